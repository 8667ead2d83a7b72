// Freshness measured where it happens: the sink's commit. Rows whose source change is 3 s old must
// report ~3 s (not less: visible_at is stamped before COMMIT, so the commit itself is counted from the
// commit's return), per topology version, in the Prometheus histogram and in the view's live columns.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { COMMITTED_FRESHNESS, PgvectorSink, type SinkLogEvent } from '../../src/sink/pgvector-sink.ts'
import { Metrics } from '../../src/observability/metrics.ts'
import { instrumentSink } from '../../src/ops/instrument.ts'
import { endpoints } from '../support/stack.ts'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, waitFor } from './support.ts'

const AGE_MS = 3000

test('sink: event → visible is measured at the commit, per topology version, and the view has a live window', async (t) => {
  const env = await createSinkEnv(t, { dims: 4, partitions: 2 })
  const { config } = env
  const producer = await chunkProducer(t, config)
  const metrics = new Metrics()
  const events: SinkLogEvent[] = []
  const instrumented = instrumentSink(metrics, config.names.chunkTableName, (e) => events.push(e))
  const sink = new PgvectorSink({
    config,
    postgresUrl: env.sinkUrl,
    kafkaBrokers: endpoints.kafkaBrokers,
    schemaRegistryUrl: endpoints.schemaRegistryUrl,
    log: instrumented.log,
  })
  const done = sink.run()
  done.catch(() => {})
  t.after(async () => {
    sink.stop()
    await done.catch(() => {})
  })

  const sourceTs = Date.now() - AGE_MS
  const ids = Array.from({ length: 6 }, (_, i) => `f${i}#0`)
  await producer.send(
    await Promise.all(
      ids.map(async (id, i) => {
        const value = chunkEvent(config, { id })
        ;(value.lineage as Record<string, unknown>).source_timestamp_ms = sourceTs
        return { key: id, partition: i % 2, value: await producer.encodeChunk(value) }
      }),
    ),
  )
  await waitFor('the six rows', async () => (await readChunks(env.admin, config)).size === 6)
  await waitFor('their commits to be logged', async () => {
    const upserted = events.reduce((n, e) => n + (e.event === 'batch-committed' ? e.upserted : 0), 0)
    return upserted >= 6
  })

  const rows = await env.admin.query<{ visible_ms: number }>(
    `SELECT extract(epoch FROM visible_at) * 1000 AS visible_ms FROM ${config.names.chunkTable}`,
  )
  const lastVisibleAt = Math.max(...rows.rows.map((r) => Number(r.visible_ms)))
  const lags: number[] = []
  let lastCommit = 0
  for (const e of events) {
    if (e.event !== 'batch-committed' || e.upserted === 0) continue
    assert.equal(typeof e.visibleAtMs, 'number', 'a fresh commit says when it returned')
    lastCommit = Math.max(lastCommit, e.visibleAtMs!)
    assert.doesNotMatch(JSON.stringify(e), /lagsMs/, 'the per-row figures stay out of JSON logs')
    for (const f of e[COMMITTED_FRESHNESS] ?? []) {
      assert.deepEqual([f.topology, f.version], [config.topology, config.version])
      for (const ms of f.lagsMs) {
        assert.equal(ms, e.visibleAtMs! - sourceTs, 'lag = commit − source change')
        lags.push(ms)
      }
    }
  }
  assert.equal(lags.length, 6)
  // The rows' visible_at is stamped inside the transaction: the commit returns at or after it.
  assert.ok(lastCommit + 1 >= lastVisibleAt, `commit ${lastCommit} before the rows' visible_at ${lastVisibleAt}`)
  for (const ms of lags) assert.ok(ms >= AGE_MS && ms < AGE_MS + 20_000, `lag ${ms} ms`)

  const body = await metrics.text()
  const labels = `topology="${config.topology}",version="${config.version}"`
  const count = body.match(new RegExp(`^ragstream_event_to_visible_seconds_count\\{${labels}\\} (\\d+)$`, 'm'))
  assert.equal(count?.[1], '6', body)
  // 3 s old changes: none under 2 s, all under 30 s (the bucket bounds either side).
  const bucket = (le: string) =>
    body.match(new RegExp(`^ragstream_event_to_visible_seconds_bucket\\{le="${le}",${labels}\\} (\\d+)$`, 'm'))?.[1]
  assert.equal(bucket('2'), '0', body)
  assert.equal(bucket('30'), '6', body)

  const view = await env.admin.query<{ chunks: string; chunks_5m: string; p50: number; p99: number }>(
    `SELECT chunks, chunks_5m, extract(epoch FROM p50_lag_5m) AS p50, extract(epoch FROM p99_lag_5m) AS p99
     FROM ${config.names.freshnessView}`,
  )
  assert.equal(view.rows.length, 1)
  assert.equal(Number(view.rows[0].chunks_5m), 6)
  assert.ok(
    Number(view.rows[0].p50) >= AGE_MS / 1000 && Number(view.rows[0].p99) < AGE_MS / 1000 + 20,
    `p50 ${view.rows[0].p50} s, p99 ${view.rows[0].p99} s`,
  )
  // Rows made visible longer ago than the window leave the live columns, not the all-time ones.
  await env.admin.query(`UPDATE ${config.names.chunkTable} SET visible_at = visible_at - interval '10 minutes'`)
  const later = await env.admin.query<{ chunks: string; chunks_5m: string; p50: unknown }>(
    `SELECT chunks, chunks_5m, p50_lag_5m AS p50 FROM ${config.names.freshnessView}`,
  )
  assert.deepEqual([Number(later.rows[0].chunks), Number(later.rows[0].chunks_5m), later.rows[0].p50], [6, 0, null])
})
