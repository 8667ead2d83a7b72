// instrumentProcessor counts what a batch produced only when its transaction commits: an aborted batch
// is processed again, and counting it twice would overstate throughput.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Metrics } from '../../src/observability/metrics.ts'
import { instrumentProcessor, instrumentSink } from '../../src/ops/instrument.ts'
import type { ProcessorTopology, SinkRecord, SourceRecord } from '../../src/runtime/task.ts'
import { DEAD_LETTER_HEADERS } from '../../src/topology/compile.ts'
import { sampleSum } from './support.ts'

const topology: ProcessorTopology = {
  applicationId: 'app',
  sourceTopics: ['in', 'app-join-repartition'],
  topics: [
    { name: 'in', role: 'source', config: {} },
    { name: 'app-join-repartition', role: 'repartition', config: {} },
    { name: 'out', role: 'sink', config: {} },
    { name: 'app-dead-letter', role: 'dead-letter', config: {} },
  ],
  storeNames: [],
  prefetchKeys: () => new Map(),
  async process(records) {
    return records.flatMap((r): SinkRecord[] => r.value?.toString() === 'bad'
      ? [{ topic: 'app-dead-letter', partition: 0, key: null, value: r.value, headers: new Map([[DEAD_LETTER_HEADERS.node, Buffer.from('decode-in')], [DEAD_LETTER_HEADERS.code, Buffer.from('RS_DECODE_FAILED')]]) }]
      : [{ topic: 'out', partition: 0, key: r.key, value: r.value }, { topic: 'app-join-repartition', partition: 0, key: r.key, value: r.value }])
  },
}

const record = (topic: string, value: string): SourceRecord => ({ topic, partition: 0, offset: 0n, timestamp: 0n, key: Buffer.from('k'), value: Buffer.from(value), headers: new Map() })

test('records in/out/dead-lettered are counted at commit; an aborted batch is not counted', async () => {
  const metrics = new Metrics()
  const events: string[] = []
  const m = instrumentProcessor(topology, metrics, { onEvent: (e) => events.push(e.event) })
  const batch = [record('in', 'a'), record('in', 'bad'), record('app-join-repartition', 'r')]

  await m.topology.process(batch, new Map(), 0)
  await m.onBatchStage('produced')
  m.onEvent({ event: 'batch-aborted', reason: 'transient' })
  assert.equal(sampleSum(await metrics.text(), 'ragstream_records_in_total'), 0, 'nothing counted for the aborted attempt')

  await m.topology.process(batch, new Map(), 0)
  await m.onBatchStage('produced')
  await m.onBatchStage('offsets-sent')
  await m.onBatchStage('committed')
  const text = await metrics.text()
  assert.match(text, /ragstream_records_in_total\{topology="app",node="in"\} 2/)
  assert.doesNotMatch(text, /node="app-join-repartition"/, 'internal repartition reads are not input')
  assert.match(text, /ragstream_records_out_total\{topology="app",node="out"\} 2/)
  assert.match(text, /ragstream_dead_letter_records_total\{topology="app",node="decode-in",code="RS_DECODE_FAILED"\} 1/)
  assert.match(text, /ragstream_transactions_aborted_total\{topology="app",reason="transient"\} 1/)
  assert.equal(sampleSum(text, 'ragstream_transaction_commit_seconds_count'), 1)
  assert.deepEqual(m.counters, { recordsIn: 2, recordsOut: 2, deadLetters: 1, batches: 1, aborts: 1 })
  assert.deepEqual(events, ['batch-aborted'], 'events reach the chained callback')
})

test('restore progress: a restoring event sets the records left to replay, restored sets them to 0', async () => {
  const metrics = new Metrics()
  const m = instrumentProcessor(topology, metrics)
  const gauge = /ragstream_restore_remaining_records\{topology="app",store="chunks",partition="1"\} (\d+)/
  m.onEvent({ event: 'restoring', store: 'chunks', partition: 1, from: 40n, to: 1040n })
  assert.equal(gauge.exec(await metrics.text())?.[1], '1000')
  m.onEvent({ event: 'restored', store: 'chunks', partition: 1, from: 40n, to: 1040n, records: 990, cleared: false })
  const text = await metrics.text()
  assert.equal(gauge.exec(text)?.[1], '0')
  assert.match(text, /ragstream_restore_records_total\{topology="app",store="chunks"\} 990/)
})

test('sink: batch size and commit time per committed batch; a batch already committed adds no rows', async () => {
  const metrics = new Metrics()
  const m = instrumentSink(metrics, 'chunks_t_v1')
  m.log({ event: 'batch-begin', records: 7, partitions: [0] })
  m.log({ event: 'batch-committed', upserted: 5, deleted: 2, audits: 0, rejects: 0, alreadyCommitted: false, offsets: {} })
  m.log({ event: 'batch-begin', records: 7, partitions: [0] })
  m.log({ event: 'batch-committed', upserted: 5, deleted: 2, audits: 0, rejects: 0, alreadyCommitted: true, offsets: {} })
  const text = await metrics.text()
  assert.match(text, /ragstream_sink_rows_total\{table="chunks_t_v1",op="upsert"\} 5/)
  assert.match(text, /ragstream_sink_rows_total\{table="chunks_t_v1",op="delete"\} 2/)
  assert.equal(sampleSum(text, 'ragstream_sink_batch_size_count'), 2)
  assert.deepEqual(m.counters, { batches: 1, upserted: 5, deleted: 2, rejects: 0 })
})

test('exportProcessorLag: the group\'s lag on the external sources, polled from the real broker', { timeout: 20_000 }, async (t) => {
  const { checkKafka } = await import('../../src/config/services.ts')
  const { createTopics, endpoints, uniqueName } = await import('../support/stack.ts')
  const { exportProcessorLag } = await import('../../src/ops/instrument.ts')
  const { Producer } = await import('@platformatic/kafka')
  await checkKafka(endpoints)
  const source = uniqueName('ops-lag-src')
  await createTopics(t, [source], 1)
  const producer = new Producer({ clientId: uniqueName('ops-lag'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => producer.close())
  await producer.send({ messages: [1, 2, 3].map((i) => ({ topic: source, value: Buffer.from(String(i)) })) })
  const metrics = new Metrics()
  const stop = exportProcessorLag(metrics, endpoints.kafkaBrokers, { ...topology, applicationId: uniqueName('ops-lag-app'), sourceTopics: [source, 'app-join-repartition'], topics: [{ name: source, role: 'source', config: {} }, ...topology.topics.slice(1)] }, 100)
  await stop() // stopping takes a final reading
  const text = await metrics.text()
  assert.match(text, new RegExp(`ragstream_consumer_lag\\{component="processor",topic="${source}",partition="0"\\} 3`))
  assert.doesNotMatch(text, /app-join-repartition/)
})
