// replay --bulk on the real stack: the new version's table is loaded without its vector index, the
// index is built once after catching up, and the result equals an incremental replay of the same
// sources: same rows, HNSW present, the same top-k for a sample of queries. (Chunk ids name their
// version, so rows are compared by entity and chunk index.)
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Writable } from 'node:stream'
import type pg from 'pg'
import { loadApp } from '../../src/app/load.ts'
import { checkKafka, checkPostgres, checkRedis } from '../../src/config/services.ts'
import { hashingEmbed } from '../../src/embedding/hashing.ts'
import { generate } from '../../src/generator/generator.ts'
import { connectPostgres } from '../../src/ops/pipeline.ts'
import { replay } from '../../src/ops/replay.ts'
import type { SinkConfig } from '../../src/sink/config.ts'
import { endpoints } from '../support/stack.ts'
import { opsEnv } from './support.ts'

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

async function rows(admin: pg.Client, sink: SinkConfig): Promise<unknown[]> {
  const result = await admin.query(
    `SELECT entity_type, entity_key, chunk_index, content, content_hash, embedding::text, metadata
     FROM ${sink.names.chunkTable} ORDER BY entity_type, entity_key, chunk_index`,
  )
  return result.rows
}

/**
 * The top 5 as distances and, for the rows closer than the 5th, their chunks sorted by (distance, chunk):
 * rows at equal distance (identical texts embed identically) come back in any order, and a tie at the
 * 5th place may be broken either way, so only what is determined is compared.
 */
async function topK(
  admin: pg.Client,
  sink: SinkConfig,
  vector: readonly number[],
): Promise<{ distances: string[]; closer: string[] }> {
  await admin.query('BEGIN')
  try {
    await admin.query('SET LOCAL enable_seqscan = off; SET LOCAL hnsw.ef_search = 1000')
    const sql = `SELECT entity_key || '#' || chunk_index AS chunk, embedding <=> $1::vector AS d FROM ${sink.names.chunkTable} ORDER BY embedding <=> $1::vector LIMIT 5`
    const plan = await admin.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, [`[${vector.join(',')}]`])
    assert.match(plan.rows.map((r) => r['QUERY PLAN']).join('\n'), /Index Scan using .*_hnsw/)
    const found = (await admin.query<{ chunk: string; d: number }>(sql, [`[${vector.join(',')}]`])).rows.map((r) => ({
      chunk: r.chunk,
      d: Number(r.d).toFixed(6),
    }))
    const last = found.at(-1)?.d
    return {
      distances: found.map((r) => r.d),
      closer: found
        .filter((r) => r.d !== last)
        .sort((a, b) => a.d.localeCompare(b.d) || a.chunk.localeCompare(b.chunk))
        .map((r) => `${r.d} ${r.chunk}`),
    }
  } finally {
    await admin.query('ROLLBACK')
  }
}

test(
  'replay --bulk: loaded without the index, indexed once, equal to an incremental replay',
  { timeout: 120_000 },
  async (t) => {
    await Promise.all([checkKafka(endpoints), checkRedis(endpoints.redisUrl), checkPostgres(endpoints.postgresUrl)])
    const o = opsEnv(t)
    const prefix = `${o.name}.src`
    await generate({
      brokers: endpoints.kafkaBrokers,
      seed: 21,
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
      config: o.config,
      out: out.stream,
      timeoutMs: 40_000,
    }
    const v1 = await replay({ ...common, toVersion: 'v1' })
    assert.ok(v1.caughtUp, out.text())
    assert.equal(v1.indexBuildSeconds, undefined)

    const bulkOut = collect()
    const v2 = await replay({
      ...common,
      out: bulkOut.stream,
      toVersion: 'v2',
      bulk: true,
      indexBuild: { maintenanceWorkMem: '64MB', parallelWorkers: 1 },
    })
    assert.ok(v2.caughtUp, bulkOut.text())
    assert.ok(v2.indexBuildSeconds !== undefined && v2.indexBuildSeconds >= 0)
    assert.match(bulkOut.text(), /bulk mode: phase 1\/2 loads the table without its vector index/)
    assert.match(
      bulkOut.text(),
      /\[#+\.*\] +\d+% \d+\/\d+ records \(processor \d+\/~?\d+, sink \d+\/~?\d+ chunks\) .* ETA \S+ \+ the index build /,
    )
    assert.match(
      bulkOut.text(),
      /phase 2\/2: building the hnsw index of .*\n.*index built in [\d.]+s; t\w+@v2 is now promotable/,
    )

    const admin = await connectPostgres(endpoints.postgresUrl, 'replay-bulk-test')
    t.after(() => admin.end())
    const state = await admin.query(
      `SELECT version, index_state, active FROM ${v2.deployment.sink.names.versionsTable} WHERE topology = $1 ORDER BY version`,
      [v2.deployment.sink.topology],
    )
    assert.deepEqual(state.rows, [
      { version: 'v1', index_state: 'ready', active: true },
      { version: 'v2', index_state: 'ready', active: false },
    ])
    const v1Rows = await rows(admin, v1.deployment.sink)
    assert.ok(v1Rows.length >= 60, `${v1Rows.length} rows`)
    assert.deepEqual(await rows(admin, v2.deployment.sink), v1Rows)
    for (const text of [
      'export to CSV stops',
      'refund for a damaged parcel',
      'login fails after reset',
      'invoice',
      'slow dashboard',
    ]) {
      const vector = Array.from(hashingEmbed(text, v1.deployment.sink.dims))
      assert.deepEqual(
        await topK(admin, v2.deployment.sink, vector),
        await topK(admin, v1.deployment.sink, vector),
        text,
      )
    }
  },
)
