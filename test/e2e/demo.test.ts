// `ragstream demo` end to end on the real stack, bounded: the generator, the exactly-once processor and
// the pgvector sink run together; rows appear, /metrics is scraped while they run, the sample query as
// an analyst returns them, and the forget step's receipt shows 0 rows remaining. A second run is stopped with SIGTERM mid-flight: the CLI exits 0 and no
// transaction is left open on the chunk topic.
import { loadApp } from '../../src/app/load.ts'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import pg from 'pg'
import { checkKafka, checkPostgres, checkRedis } from '../../src/config/services.ts'
import { Metrics, serveMetrics } from '../../src/observability/metrics.ts'
import { runDemo } from '../../src/ops/demo.ts'
import { topologyStatus } from '../../src/ops/status.ts'
import { endpoints } from '../support/stack.ts'
import { openTransactionPartitions, opsEnv, sampleSum, scrape } from '../ops/support.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

test(
  'demo: rows appear in Postgres, /metrics shows every stage, the analyst query returns them',
  { timeout: 200_000 },
  async (t) => {
    await Promise.all([checkKafka(endpoints), checkRedis(endpoints.redisUrl), checkPostgres(endpoints.postgresUrl)])
    const o = opsEnv(t)
    const metrics = new Metrics()
    const server = await serveMetrics(metrics, { port: 0 })
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const port = (server.address() as AddressInfo).port

    let output = ''
    const out = { write: (chunk: string) => ((output += chunk), true) } as unknown as NodeJS.WritableStream
    let scraped = ''
    const scraper = setInterval(
      () =>
        void scrape(port).then(
          (text) => {
            if (sampleSum(text, 'ragstream_sink_rows_total') > 0) scraped = text
          },
          () => {},
        ),
      500,
    )
    t.after(() => clearInterval(scraper))

    const result = await runDemo({
      config: o.config,
      durationSeconds: 6,
      // A loaded machine drains slowly: the forget step's row count is only exact on a drained pipeline.
      drainTimeoutSeconds: 120,
      backfill: 120,
      rate: 10,
      partitions: 2,
      metrics,
      out,
      name: o.name,
      sqlTopology: o.sqlTopology,
      analystRole: o.analystRole,
      cachePrefix: o.cachePrefix,
    })
    clearInterval(scraper)

    assert.equal(result.interrupted, false)
    assert.equal(result.drained, true, `the pipeline drained before the query and the forget\n${output}`)
    assert.ok(result.rows >= 100, `${result.rows} chunk rows for 120+ tickets\n${output}`)
    assert.match(
      output,
      /in\/s +out\/s +lag\(proc\/sink\) +capture p50\/p99 +ragstream p50\/p99 +rows +dlq +embed calls\/hits\/cpu/,
    )
    // The final line: the live changes' freshness split at their append to the (LogAppendTime) source topics.
    const split =
      /^live changes \((\d+) rows\): capture \(source commit → source topic\) p50 (\S+), p99 (\S+); ragstream \(source topic → visible in Postgres\) p50 (\d+ms|\d+\.\d+s), p99 (\d+ms|\d+\.\d+s)$/m.exec(
        output,
      )
    assert.ok(split && Number(split[1]) > 0, output)
    assert.notEqual(split[2], '–', 'every live row carries its append time')
    // npm run setup installed the local model, so the demo embeds with it (CPU time > 0 in the last column).
    assert.match(output, /embedding local:all-minilm-l6-v2-int8 \(ONNX in a worker thread\)/)
    const cpu = [...output.matchAll(/ \d+\/\d+\/(\d+\.\d)s\n/g)].map((m) => Number(m[1]))
    assert.ok(cpu.length > 0 && cpu[cpu.length - 1] > 0, output)
    assert.ok(result.neighbours.every((n) => n.embedding_model === 'local:all-minilm-l6-v2-int8@384'))
    assert.equal(result.neighbours.length, 5, output)
    for (const n of result.neighbours) {
      assert.equal(n.topology_version, result.deployment.version)
      assert.equal(n.entity_type, 'ticket')
    }
    assert.match(output, /score +entity +chunk +snippet +lineage/)

    // The forget step: the customer with the most rows, forgotten through `ragstream forget --wait`; the receipt proves 0 remain.
    const forgotten = result.forgotten
    assert.ok(forgotten, output)
    assert.match(forgotten.subject, /^customer:\d+$/)
    assert.equal(forgotten.receipt.remaining, 0, output)
    const rowsDeleted = Object.values(forgotten.receipt.rowsDeleted).reduce((a, b) => a + b, 0)
    assert.equal(rowsDeleted, forgotten.rows, 'the receipt counts every row the customer had')
    assert.ok(forgotten.receipt.chunksTombstoned >= forgotten.rows)
    assert.match(output, /forget receipt[\s\S]*verification +0 rows remain/)
    t.diagnostic(output.slice(output.indexOf('$ ragstream forget')))

    // The analyst view reads this run's version; the rows are really there.
    const admin = new pg.Client({ connectionString: endpoints.postgresUrl })
    await admin.connect()
    t.after(() => admin.end())
    const active = await admin.query(
      `SELECT version FROM ${result.deployment.sink.names.versionsTable} WHERE topology = $1 AND active`,
      [o.sqlTopology],
    )
    assert.deepEqual(active.rows, [{ version: result.deployment.version }])
    const count = await admin.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${result.deployment.sink.names.chunkTable}`,
    )
    assert.equal(Number(count.rows[0].n), result.rows - rowsDeleted)
    const left = await admin.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${result.deployment.sink.names.chunkTable} WHERE subjects @> ARRAY[$1]::text[]`,
      [forgotten.subject],
    )
    assert.equal(Number(left.rows[0].n), 0, 'the forgotten customer has no row left')

    // The demo drained before querying: status agrees (a lag of 1 on the chunk topic is its last commit marker).
    const status = await topologyStatus({
      app: await loadApp('support-copilot'),
      config: o.config,
      name: o.name,
      sqlTopology: o.sqlTopology,
      prefix: result.deployment.prefix,
    })
    assert.equal(status.activeVersion, result.deployment.version)
    const [version] = status.versions
    assert.equal(version.processor.lag, 0)
    assert.ok(
      version.sink.partitions.every((p) => p.lag <= 1),
      JSON.stringify(version.sink.partitions),
    )
    assert.equal(version.freshness?.rows, result.rows - rowsDeleted)
    assert.ok(
      version.stores.some((s) => s.store === 'chunk-embed-chunk-sets' && s.checkpoint !== null),
      'store checkpoints from Redis',
    )

    // Scraped during the run: every stage reported.
    assert.ok(scraped, 'a scrape during the run saw sink rows')
    for (const family of [
      'ragstream_records_in_total',
      'ragstream_records_out_total',
      'ragstream_embedding_calls_total',
      'ragstream_embedding_items_total',
      'ragstream_sink_rows_total',
    ]) {
      assert.ok(sampleSum(scraped, family) > 0, `${family} > 0 in\n${scraped}`)
    }
    for (const family of [
      'ragstream_transaction_commit_seconds',
      'ragstream_sink_commit_seconds',
      'ragstream_sink_batch_size',
      'ragstream_freshness_seconds',
      'ragstream_embedding_latency_seconds',
    ]) {
      assert.ok(sampleSum(scraped, `${family}_count`) > 0, `${family}_count > 0`)
    }
    assert.match(
      scraped,
      /ragstream_consumer_lag\{component="processor",topic="[^"]+\.public\.tickets",partition="0"\}/,
    )
    assert.match(scraped, /ragstream_consumer_lag\{component="sink",topic="rag\.chunks\./)
  },
)

test(
  'ragstream demo: SIGTERM mid-run stops generator, processor and sink cleanly (exit 0, no open transaction)',
  { timeout: 60_000 },
  async (t) => {
    await Promise.all([checkKafka(endpoints), checkRedis(endpoints.redisUrl), checkPostgres(endpoints.postgresUrl)])
    const o = opsEnv(t)
    const child = spawn(
      join(ROOT, 'node_modules/.bin/node'),
      [
        join(ROOT, 'bin/ragstream.ts'),
        'demo',
        '--duration',
        '40',
        '--backfill',
        '100',
        '--rate',
        '20',
        '--partitions',
        '2',
        '--name',
        o.name,
        '--sql-topology',
        o.sqlTopology,
        '--analyst-role',
        o.analystRole,
        // What SIGTERM does to generator, processor and sink; the Debezium path is test/generator/sql-source.test.ts's.
        '--source',
        'kafka',
      ],
      { env: o.env, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    t.after(() => void (child.exitCode === null && child.kill('SIGKILL')))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))

    // Wait for a progress line with rows in Postgres, then stop it.
    const deadline = Date.now() + 40_000
    while (!/^ +\d+s +\S+ +\d+ +\d+ +\d+ +\S+ +\S+ +\S+ +[1-9]\d* /m.test(stdout)) {
      assert.ok(Date.now() < deadline, `no progress with rows; stdout:\n${stdout}\nstderr:\n${stderr}`)
      assert.equal(child.exitCode, null, `demo exited early:\n${stdout}\n${stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const code = await Promise.race([
      exited,
      new Promise((resolve) => (timer = setTimeout(resolve, 20_000, 'still running 20 s after SIGTERM'))),
    ])
    clearTimeout(timer)
    assert.equal(code, 0, `${stdout}\n${stderr}`)
    assert.match(stdout, /interrupted: stopping generator, processor and sink/)
    assert.doesNotMatch(stdout, /score +entity/, 'an interrupted demo skips the query')

    const chunkTopic = /→ (rag\.chunks\.\S+)/.exec(stdout)?.[1]
    assert.ok(chunkTopic, stdout)
    assert.deepEqual(
      await openTransactionPartitions(chunkTopic, 2),
      [],
      'every transaction on the chunk topic is committed or aborted',
    )
  },
)
