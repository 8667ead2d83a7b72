// Blue/green re-index on the real stack: v1 is built and serves analyst queries; v2 is replayed beside
// it with the same model (the fake OpenAI-compatible server sees no request for content: every vector
// comes from the shared embedding cache); queries keep seeing v1 throughout; `ragstream promote v2
// --drop-old` switches the view and queries see v2; v1's table is gone.
import { loadApp } from '../../src/app/load.ts'
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Writable } from 'node:stream'
import { main } from '../../src/cli/main.ts'
import { checkKafka, checkPostgres, checkRedis } from '../../src/config/services.ts'
import { hashingEmbed } from '../../src/embedding/hashing.ts'
import type { OpenAIEmbeddingConfig } from '../../src/embedding/openai.ts'
import { generate } from '../../src/generator/generator.ts'
import { ensureAnalyst } from '../../src/ops/demo.ts'
import { connectPostgres } from '../../src/ops/pipeline.ts'
import { replay } from '../../src/ops/replay.ts'
import { quoteIdent } from '../../src/sink/identifiers.ts'
import { nearestNeighbours } from '../../src/sink/query.ts'
import { startFakeOpenAI } from '../embedding/fake-openai.ts'
import { endpoints } from '../support/stack.ts'
import { opsEnv } from './support.ts'

const PROBE = 'ragstream embedding check'

function collect(): { stream: NodeJS.WritableStream; text: () => string } {
  let text = ''
  const stream = new Writable({
    write(chunk, _e, done) {
      text += String(chunk)
      done()
    },
  })
  return { stream, text: () => text }
}

test(
  'replay v2 beside serving v1 with the same model: 0 embedding calls for content, promote switches queries to v2',
  { timeout: 90_000 },
  async (t) => {
    await Promise.all([checkKafka(endpoints), checkRedis(endpoints.redisUrl), checkPostgres(endpoints.postgresUrl)])
    const o = opsEnv(t, { RAGSTREAM_SINK_DIMENSIONS: '64' })
    const fake = await startFakeOpenAI(t, { dimensions: 64 })
    const embedding: OpenAIEmbeddingConfig = {
      kind: 'openai',
      model: 'fake-embed',
      dimensions: 64,
      baseUrl: fake.baseUrl,
    }
    const prefix = `${o.name}.src`
    await generate({
      brokers: endpoints.kafkaBrokers,
      seed: 7,
      server: prefix,
      withSchema: false,
      backfill: 60,
      rate: 0,
      malformedRate: 0,
      createTopics: { partitions: 2 },
    })
    const out = collect()
    const common = {
      app: await loadApp('support-copilot'),
      prefix,
      name: o.name,
      sqlTopology: o.sqlTopology,
      cachePrefix: o.cachePrefix,
      embedding,
      config: o.config,
      out: out.stream,
      timeoutMs: 40_000,
    }

    const v1 = await replay({ ...common, toVersion: 'v1' })
    assert.ok(v1.caughtUp, out.text())
    assert.ok(v1.rows >= 60, `${v1.rows} rows in v1`)
    assert.ok(
      fake.requests.some((r) => !r.input.includes(PROBE)),
      'v1 embedded its content',
    )
    assert.match(
      out.text(),
      /\[#+\.*\] +\d+% \d+\/\d+ records \(processor \d+\/~?\d+, sink \d+\/~?\d+ chunks\) .* ETA /,
    )

    // An analyst queries the view all along.
    const analyst = await connectPostgres(await ensureAnalyst(o.config, v1.deployment, o.analystRole), 'replay-test')
    t.after(() => analyst.end())
    const vector = Array.from(hashingEmbed('the export to CSV stops at 10,000 rows', 64))
    const view = v1.deployment.sink.names.view
    const query = async () =>
      nearestNeighbours(analyst, { view, distance: 'cosine', vector, filter: { columns: [], metadata: {} }, k: 3 })
    assert.deepEqual([...new Set((await query()).map((r) => r.topology_version))], ['v1'])
    const seen: string[][] = []
    let querying = true
    const querier = (async () => {
      while (querying) {
        seen.push((await query()).map((r) => r.topology_version))
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    })()
    t.after(() => {
      querying = false
    })

    const before = fake.requests.length
    const v2 = await replay({ ...common, toVersion: 'v2' })
    querying = false
    await querier
    assert.ok(v2.caughtUp, out.text())
    const during = fake.requests.slice(before)
    assert.deepEqual(
      during.filter((r) => !r.input.includes(PROBE)),
      [],
      'no embedding call for content during a same-model replay',
    )
    assert.equal(v2.embedding.cacheMisses, 0)
    assert.ok(v2.embedding.cacheHits > 0)
    assert.equal(v2.rows, v1.rows, 'same sources, same chunks')
    assert.equal(v2.deployment.chunkTopic, `rag.chunks.${o.name}.v2`)
    assert.equal(v2.deployment.applicationId, `${o.name}-v2`)
    assert.ok(seen.length >= 3, `${seen.length} queries during the replay`)
    for (const versions of seen) assert.deepEqual(versions, ['v1', 'v1', 'v1'], 'v1 keeps serving while v2 is built')

    const promote = collect()
    const err = collect()
    const code = await main(['promote', 'support-copilot', 'v2', '--sql-topology', o.sqlTopology, '--drop-old'], {
      stdout: promote.stream as typeof process.stdout,
      stderr: err.stream as typeof process.stderr,
      env: o.env,
    })
    assert.equal(code, 0, err.text())
    assert.match(promote.text(), /now reads t\w+@v2 \(was v1\)\ndropped t\w+@v1/)
    assert.deepEqual([...new Set((await query()).map((r) => r.topology_version))], ['v2'])

    // `ragstream query` embeds the text with the model the rows record (the OpenAI-compatible one here,
    // at RAGSTREAM_EMBEDDING_URL), as the analyst, through rows the real pipeline wrote.
    const asked = 'the export to CSV stops at 10,000 rows'
    const mark = fake.requests.length
    const found = collect()
    const queried = await main(
      [
        'query',
        asked,
        '--topology',
        o.sqlTopology,
        '-k',
        '3',
        '--json',
        '--view-schema',
        o.config.sink.viewSchema,
        '--postgres-url',
        await ensureAnalyst(o.config, v2.deployment, o.analystRole),
      ],
      {
        stdout: found.stream as typeof process.stdout,
        stderr: err.stream as typeof process.stderr,
        env: { ...o.env, RAGSTREAM_EMBEDDING_URL: fake.baseUrl },
      },
    )
    assert.equal(queried, 0, err.text())
    assert.ok(
      fake.requests.slice(mark).some((r) => JSON.stringify(r.input).includes(asked)),
      'the query text went to the provider the rows were embedded with',
    )
    const hits = found
      .text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { topology_version: string })
    assert.equal(hits.length, 3)
    assert.deepEqual([...new Set(hits.map((h) => h.topology_version))], ['v2'])
    const admin = await connectPostgres(endpoints.postgresUrl, 'replay-test-admin')
    t.after(() => admin.end())
    const gone = await admin.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [
      v1.deployment.sink.names.chunkTable,
    ])
    assert.equal(gone.rows[0].t, null, 'v1 table dropped')

    const again = await main(['promote', 'support-copilot', 'v1', '--sql-topology', o.sqlTopology], {
      stdout: promote.stream as typeof process.stdout,
      stderr: err.stream as typeof process.stderr,
      env: o.env,
    })
    assert.equal(again, 78, 'a dropped version cannot be promoted')
    assert.match(err.text(), /<version>: t\w+@v1 does not exist \(versions: v2\)/)
  },
)

test(
  'replay --follow: after catching up the new version keeps following live changes until stopped',
  { timeout: 60_000 },
  async (t) => {
    await Promise.all([checkKafka(endpoints), checkRedis(endpoints.redisUrl), checkPostgres(endpoints.postgresUrl)])
    const o = opsEnv(t)
    const prefix = `${o.name}.src`
    await generate({
      brokers: endpoints.kafkaBrokers,
      seed: 11,
      server: prefix,
      withSchema: false,
      backfill: 20,
      rate: 0,
      malformedRate: 0,
      createTopics: { partitions: 2 },
    })
    const out = collect()
    const stop = new AbortController()
    const following = replay({
      app: await loadApp('support-copilot'),
      toVersion: 'v1',
      prefix,
      name: o.name,
      sqlTopology: o.sqlTopology,
      cachePrefix: o.cachePrefix,
      config: o.config,
      out: out.stream,
      follow: true,
      signal: stop.signal,
    })
    t.after(() => stop.abort())
    const deadline = Date.now() + 30_000
    while (!out.text().includes('following live changes')) {
      assert.ok(Date.now() < deadline, out.text())
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const reader = await connectPostgres(o.config.postgres.sinkUrl, 'replay-follow-test')
    t.after(() => reader.end())
    const count = async () =>
      Number(
        (
          await reader.query<{ n: string }>(
            `SELECT count(*) AS n FROM ${quoteIdent(o.config.sink.schema)}.${quoteIdent(`chunks_${o.sqlTopology}_v1`)}`,
          )
        ).rows[0].n,
      )
    const before = await count()
    // A second backfill under another server name would be other topics: more tickets on the same topics instead.
    await generate({
      brokers: endpoints.kafkaBrokers,
      seed: 12,
      server: prefix,
      withSchema: false,
      backfill: 60,
      rate: 0,
      malformedRate: 0,
    })
    while ((await count()) <= before) {
      assert.ok(Date.now() < deadline + 20_000, `no new rows while following:\n${out.text()}`)
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    stop.abort()
    const result = await following
    assert.ok(result.caughtUp)
    assert.ok(result.rows > before)
  },
)
