// Freshness measured where it happens: the sink's commit. Rows whose source change is 3 s old must
// report ~3 s (not less: visible_at is stamped before COMMIT, so the commit itself is counted from the
// commit's return), per topology version, in the Prometheus histogram and in the view's live columns.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { COMMITTED_FRESHNESS, PgvectorSink, type SinkLogEvent } from '../../src/sink/pgvector-sink.ts'
import { Metrics } from '../../src/observability/metrics.ts'
import { instrumentSink } from '../../src/ops/instrument.ts'
import { tableFreshness } from '../../src/ops/index-versions.ts'
import { endpoints } from '../support/stack.ts'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, waitFor } from './support.ts'

const AGE_MS = 3000

/** A sink over a fresh chunk topic and table, its events and metrics recorded; stopped after the test. */
async function runInstrumentedSink(t: TestContext, partitions: number) {
  const env = await createSinkEnv(t, { dims: 4, partitions })
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
  return { env, config, producer, metrics, events }
}

test('sink: event → visible is measured at the commit, per topology version, and the view has a live window', async (t) => {
  const { env, config, producer, metrics, events } = await runInstrumentedSink(t, 2)

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

test('sink: the split at the append — rows that carry lineage.change.appended_at_ms fill source_appended_at, the view and status split capture from ragstream, and older events (no append time) keep NULL and are left out of it', async (t) => {
  const { env, config, producer, metrics, events } = await runInstrumentedSink(t, 1)

  // Changes committed at their source 3 s ago, appended to their topic 2 s later (a slow capture);
  // two events as an older processor wrote them: a change without an append time, and no change at all.
  const sourceTs = Date.now() - AGE_MS
  const appendedAt = sourceTs + 2000
  const split = ['s0#0', 's1#0', 's2#0', 's3#0']
  const messages = await Promise.all(
    [...split, 'old-change#0', 'no-change#0'].map(async (id) => {
      const value = chunkEvent(config, { id })
      const lineage = value.lineage as Record<string, unknown>
      lineage.source_timestamp_ms = sourceTs
      if (id.startsWith('s'))
        lineage.change = { topic: 'cdc.t', partition: 0, offset: 1, timestamp_ms: sourceTs, appended_at_ms: appendedAt }
      else if (id.startsWith('old'))
        lineage.change = { topic: 'cdc.t', partition: 0, offset: 1, timestamp_ms: sourceTs, appended_at_ms: null }
      return { key: id, value: await producer.encodeChunk(value) }
    }),
  )
  await producer.send(messages)
  await waitFor('the six rows', async () => (await readChunks(env.admin, config)).size === 6)
  await waitFor('their commits to be logged', async () => {
    const upserted = events.reduce((n, e) => n + (e.event === 'batch-committed' ? e.upserted : 0), 0)
    return upserted >= 6
  })

  const rows = await env.admin.query<{ chunk_id: string; appended_ms: number | null }>(
    `SELECT chunk_id, extract(epoch FROM source_appended_at) * 1000 AS appended_ms FROM ${config.names.chunkTable} ORDER BY chunk_id`,
  )
  assert.deepEqual(
    rows.rows.map((r) => [r.chunk_id, r.appended_ms === null ? null : Math.round(Number(r.appended_ms))]),
    [['no-change#0', null], ['old-change#0', null], ...split.map((id) => [id, appendedAt])],
  )

  // The view: capture exactly 2 s (source_ts → source_appended_at), ragstream the rest, over the four.
  const view = await env.admin.query<{ split: string; capture: number; ragstream: number; e2e: number }>(
    `SELECT split_chunks_5m AS split, extract(epoch FROM capture_p50_5m) AS capture,
            extract(epoch FROM ragstream_p99_5m) AS ragstream, extract(epoch FROM p99_lag_5m) AS e2e
     FROM ${config.names.freshnessView}`,
  )
  const v = view.rows[0]
  assert.equal(Number(v.split), 4)
  assert.equal(Number(v.capture), 2)
  assert.ok(Number(v.ragstream) >= 1 && Number(v.ragstream) < 1 + 20, `ragstream p99 ${v.ragstream} s`)
  assert.ok(Math.abs(Number(v.e2e) - 2 - Number(v.ragstream)) < 0.001, 'end to end = capture + ragstream')

  // status's figures: the same split over its window.
  const fresh = await tableFreshness(env.admin, config.names.chunkTable, 300)
  assert.equal(fresh.windowRows, 6)
  assert.equal(fresh.splitRows, 4)
  assert.equal(fresh.capture?.p50, 2)
  assert.ok(fresh.ragstream !== null && fresh.ragstream.p50 >= 1 && fresh.ragstream.p99 < 21)

  // The histogram of ragstream's part: the four rows, each at least 1 s (appended 1 s before the rows were written).
  const body = await metrics.text()
  const labels = `topology="${config.topology}",version="${config.version}"`
  const sample = (name: string) => body.match(new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, 'm'))?.[1]
  assert.equal(sample('ragstream_append_to_visible_seconds_count'), '4', body)
  assert.equal(sample('ragstream_event_to_visible_seconds_count'), '6', body)
  const bucket = (le: string) =>
    body.match(new RegExp(`^ragstream_append_to_visible_seconds_bucket\\{le="${le}",${labels}\\} (\\d+)$`, 'm'))?.[1]
  assert.equal(bucket('0.5'), '0', body)
  assert.equal(bucket('30'), '4', body)
})
