// instrumentProcessor counts what a batch produced only when its transaction commits: an aborted batch
// is processed again, and counting it twice would overstate throughput.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { contentHash } from '../../src/chunking/chunk-id.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import { OpenAIProvider } from '../../src/embedding/openai.ts'
import { Metrics } from '../../src/observability/metrics.ts'
import { report } from '../../src/observability/telemetry.ts'
import { instrumentProcessor, instrumentSink } from '../../src/ops/instrument.ts'
import type { ProcessorTopology, SinkRecord, SourceRecord } from '../../src/runtime/task.ts'
import { DEAD_LETTER_HEADERS } from '../../src/topology/compile.ts'
import { startFakeOpenAI } from '../embedding/fake-openai.ts'
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
    return records.flatMap((r): SinkRecord[] =>
      r.value?.toString() === 'bad'
        ? [
            {
              topic: 'app-dead-letter',
              partition: 0,
              key: null,
              value: r.value,
              headers: new Map([
                [DEAD_LETTER_HEADERS.node, Buffer.from('decode-in')],
                [DEAD_LETTER_HEADERS.code, Buffer.from('RS_DECODE_FAILED')],
              ]),
            },
          ]
        : [
            { topic: 'out', partition: 0, key: r.key, value: r.value },
            { topic: 'app-join-repartition', partition: 0, key: r.key, value: r.value },
          ],
    )
  },
}

const record = (topic: string, value: string): SourceRecord => ({
  topic,
  partition: 0,
  offset: 0n,
  timestamp: 0n,
  key: Buffer.from('k'),
  value: Buffer.from(value),
  headers: new Map(),
})

test('records in/out/dead-lettered are counted at commit; an aborted batch is not counted', async () => {
  const metrics = new Metrics()
  const events: string[] = []
  const m = instrumentProcessor(topology, metrics, { onEvent: (e) => events.push(e.event) })
  const batch = [record('in', 'a'), record('in', 'bad'), record('app-join-repartition', 'r')]

  await m.topology.process(batch, new Map(), 0)
  await m.onBatchStage('produced')
  m.onEvent({ event: 'batch-aborted', phase: 'process', recovery: 'retry', error: 'Redis blip' })
  assert.equal(
    sampleSum(await metrics.text(), 'ragstream_records_in_total'),
    0,
    'nothing counted for the aborted attempt',
  )

  await m.topology.process(batch, new Map(), 0)
  await m.onBatchStage('produced')
  await m.onBatchStage('offsets-sent')
  await m.onBatchStage('committed')
  const text = await metrics.text()
  assert.match(text, /ragstream_records_in_total\{topology="app",node="in"\} 2/)
  assert.doesNotMatch(text, /node="app-join-repartition"/, 'internal repartition reads are not input')
  assert.match(text, /ragstream_records_out_total\{topology="app",node="out"\} 2/)
  assert.match(text, /ragstream_dead_letter_records_total\{topology="app",node="decode-in",code="RS_DECODE_FAILED"\} 1/)
  assert.match(text, /ragstream_transactions_aborted_total\{topology="app",reason="retry"\} 1/)
  assert.equal(sampleSum(text, 'ragstream_transaction_commit_seconds_count'), 1)
  assert.deepEqual(m.counters, { recordsIn: 2, recordsOut: 2, deadLetters: 1, batches: 1, aborts: 1 })
  assert.deepEqual(events, ['batch-aborted'], 'events reach the chained callback')
})

test('a transaction of several process() calls (hop chaining, commit cadence) counts all of them at commit; an isolation drops them', async () => {
  const metrics = new Metrics()
  const m = instrumentProcessor(topology, metrics)
  await m.topology.process([record('in', 'a')], new Map(), 0)
  await m.topology.process([record('app-join-repartition', 'r')], new Map(), 0)
  await m.topology.process([record('in', 'b'), record('in', 'bad')], new Map(), 0)
  await m.onBatchStage('produced')
  await m.onBatchStage('committed')
  assert.deepEqual(m.counters, { recordsIn: 3, recordsOut: 3, deadLetters: 1, batches: 1, aborts: 0 })

  await m.topology.process([record('in', 'c'), record('in', 'd')], new Map(), 0)
  m.onEvent({ event: 'isolating-records', code: 'RS_RECORD_TOO_LARGE', topic: 't', bytes: 2, limit: 1, records: 2 })
  await m.topology.process([record('in', 'c')], new Map(), 0)
  await m.onBatchStage('committed')
  assert.deepEqual(m.counters, { recordsIn: 4, recordsOut: 4, deadLetters: 1, batches: 2, aborts: 0 })
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
  m.log({
    event: 'batch-committed',
    upserted: 5,
    deleted: 2,
    audits: 0,
    rejects: 0,
    alreadyCommitted: false,
    offsets: {},
  })
  m.log({ event: 'batch-begin', records: 7, partitions: [0] })
  m.log({
    event: 'batch-committed',
    upserted: 5,
    deleted: 2,
    audits: 0,
    rejects: 0,
    alreadyCommitted: true,
    offsets: {},
  })
  const text = await metrics.text()
  assert.match(text, /ragstream_sink_rows_total\{table="chunks_t_v1",writer="0",op="upsert"\} 5/)
  assert.match(text, /ragstream_sink_rows_total\{table="chunks_t_v1",writer="0",op="delete"\} 2/)
  assert.equal(sampleSum(text, 'ragstream_sink_batch_size_count'), 2)
  assert.deepEqual(m.counters, { batches: 1, upserted: 5, deleted: 2, rejects: 0 })
})

test(
  "exportProcessorLag: the group's lag on the external sources, polled from the real broker",
  { timeout: 20_000 },
  async (t) => {
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
    const stop = exportProcessorLag(
      metrics,
      endpoints.kafkaBrokers,
      {
        ...topology,
        applicationId: uniqueName('ops-lag-app'),
        sourceTopics: [source, 'app-join-repartition'],
        topics: [{ name: source, role: 'source', config: {} }, ...topology.topics.slice(1)],
      },
      100,
    )
    await stop() // stopping takes a final reading
    const text = await metrics.text()
    assert.match(
      text,
      new RegExp(`ragstream_consumer_lag\\{component="processor",topic="${source}",partition="0"\\} 3`),
    )
    assert.doesNotMatch(text, /app-join-repartition/)
  },
)

/** A topology whose decoders and govern report like the real ones, and whose process embeds with a real Embedder. */
function reportingTopology(embedder: Embedder): ProcessorTopology {
  return {
    ...topology,
    prefetchKeys(records) {
      for (const r of records)
        if (r.value?.toString().includes('@'))
          report({ kind: 'source-redactions', topic: r.topic, redactions: { email: 1 } })
      return new Map()
    },
    async process(records, stores, now) {
      await embedder.embed(
        records.map((r) => ({ text: r.value!.toString(), contentHash: contentHash(r.value!.toString()) })),
      )
      report({
        kind: 'govern',
        node: 'govern',
        emitted: records.length - 1,
        denied: 1,
        suppressed: 0,
        deleted: 0,
        requestsApplied: 2,
        entitiesForgotten: 3,
        redactions: { phone: 2, 'field:notes': 1 },
      })
      report({ kind: 'table-reset', table: 'items', reset: 'truncate', partition: 0, rowsRemoved: 3 })
      report({ kind: 'table-reset', table: 'items', reset: 'truncate', partition: 1, rowsRemoved: 0 })
      return topology.process(records, stores, now)
    },
  }
}

test("governance counts from decoders and govern, and table resets, are applied at commit, an aborted batch's not at all; embedding calls count at once", async () => {
  const metrics = new Metrics()
  const embedder = new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 8 }))
  const m = instrumentProcessor(reportingTopology(embedder), metrics)
  const run = async (batch: SourceRecord[]) => {
    m.topology.prefetchKeys(batch)
    await m.topology.process(batch, new Map(), 0)
    await m.onBatchStage('produced')
  }
  const batch = () => [record('in', 'mail a@example.com'), record('in', 'b'), record('in', 'c')]

  await run(batch())
  m.onEvent({ event: 'batch-aborted', phase: 'process', recovery: 'retry', error: 'Redis blip' })
  let text = await metrics.text()
  assert.equal(sampleSum(text, 'ragstream_redactions_total'), 0, 'nothing of the aborted attempt')
  assert.equal(sampleSum(text, 'ragstream_governed_rows_total'), 0)
  assert.equal(sampleSum(text, 'ragstream_table_resets_total'), 0)
  assert.match(
    text,
    /^ragstream_embedding_calls_total\{model="hashing:v1@8"\} 1$/m,
    'the aborted attempt did call the service',
  )

  await run(batch())
  await m.onBatchStage('committed')
  text = await metrics.text()
  assert.match(text, /^ragstream_redactions_total\{topology="app",node="source:in",detector="email"\} 1$/m)
  assert.match(text, /^ragstream_redactions_total\{topology="app",node="govern",detector="phone"\} 2$/m)
  assert.match(text, /^ragstream_redactions_total\{topology="app",node="govern",detector="field:notes"\} 1$/m)
  assert.match(text, /^ragstream_governed_rows_total\{topology="app",node="govern",outcome="emitted"\} 2$/m)
  assert.match(text, /^ragstream_governed_rows_total\{topology="app",node="govern",outcome="denied"\} 1$/m)
  assert.doesNotMatch(text, /outcome="suppressed"/, 'zero counts add no series')
  assert.match(text, /^ragstream_deletion_requests_applied_total\{topology="app",node="govern"\} 2$/m)
  assert.match(text, /^ragstream_entities_forgotten_total\{topology="app",node="govern"\} 3$/m)
  assert.match(text, /^ragstream_table_resets_total\{topology="app",table="items",kind="truncate"\} 2$/m)
  assert.match(text, /^ragstream_table_reset_rows_total\{topology="app",table="items",kind="truncate"\} 3$/m)
  assert.match(text, /^ragstream_embedding_calls_total\{model="hashing:v1@8"\} 2$/m)
  assert.match(text, /^ragstream_embedding_items_total\{model="hashing:v1@8"\} 6$/m)
  assert.equal(sampleSum(text, 'ragstream_embedding_latency_seconds_count'), 2, 'one latency sample per call')
})

test('an embedding call that fails inside the topology counts with its error code, and the retries of one that succeeded', async (t) => {
  const metrics = new Metrics()
  let fail = true
  const fake = await startFakeOpenAI(t, {
    dimensions: 8,
    intercept: (_request, n, res) => {
      if (!fail && n === 3) return false // the second embed: one 503, then an answer
      res.writeHead(fail ? 400 : 503).end('no')
      return true
    },
  })
  const remote = new Embedder(
    new OpenAIProvider({ kind: 'openai', model: 'm', dimensions: 8, baseUrl: fake.baseUrl, initialBackoffMs: 1 }, {}),
  )
  const m = instrumentProcessor(reportingTopology(remote), metrics)
  const batch = [record('in', 'a')]
  m.topology.prefetchKeys(batch)
  await assert.rejects(m.topology.process(batch, new Map(), 0))
  fail = false
  const retried = [record('in', 'b')]
  m.topology.prefetchKeys(retried)
  await m.topology.process(retried, new Map(), 0)
  const text = await metrics.text()
  assert.match(text, /^ragstream_embedding_failures_total\{model="openai:m@8",code="RS_EMBEDDING_REJECTED"\} 1$/m)
  assert.match(text, /^ragstream_embedding_retries_total\{model="openai:m@8"\} 1$/m)
  assert.match(text, /^ragstream_embedding_calls_total\{model="openai:m@8"\} 1$/m)
})
