// A batch's output goes out in bounded sends: one partition's records of one batch may exceed the
// broker's max.message.bytes (1 MiB) as a single record batch, which the broker refuses every time.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Producer } from '@platformatic/kafka'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { RagstreamError } from '../../src/errors.ts'
import { produceBounded, sendSlices } from '../../src/runtime/bounded-produce.ts'
import { KafkaRuntime } from '../../src/runtime/kafka-runtime.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { readCommitted } from '../support/runtime-harness.ts'
import { deleteAfter, runStopped, within } from '../support/runtime-waits.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const message = (partition: number, bytes: number) => ({
  topic: 't',
  partition,
  key: Buffer.from('k'),
  value: Buffer.alloc(bytes),
})

test('sendSlices keeps order, bounds every slice, and gives a record larger than the bound a slice of its own', () => {
  const messages = [message(0, 300), message(1, 300), message(0, 300), message(0, 2_000), message(1, 100)]
  const slices = sendSlices(messages, 1_000)
  assert.deepEqual(slices.flat(), messages, 'every record once, in order')
  assert.deepEqual(
    slices.map((s) => s.length),
    [3, 1, 1],
  )
  assert.equal(sendSlices([], 1_000).length, 0)
})

test('produceBounded: a send the broker refuses as too large fails RS_MESSAGE_TOO_LARGE naming its largest record (topic, partition, key, size)', async () => {
  // The shape of @platformatic/kafka's error: a protocol error nested in aggregated ones.
  const brokerError = new AggregateError(
    [new AggregateError([Object.assign(new Error('message too large'), { apiId: 'MESSAGE_TOO_LARGE' })])],
    'Producing messages failed.',
  )
  const messages = [message(0, 100), { ...message(1, 5_000), topic: 'big', key: Buffer.from('SKU-104') }]
  await assert.rejects(
    produceBounded(() => Promise.reject(brokerError), messages, 1_000_000),
    (error: unknown) => {
      assert.ok(error instanceof RagstreamError)
      assert.equal(error.code, 'RS_MESSAGE_TOO_LARGE')
      assert.equal(error.recovery, 'stop', 'never retried as transient')
      assert.match(error.message, /big partition 1 key "SKU-104", ~50\d\d bytes/)
      assert.equal(error.context.topic, 'big')
      return true
    },
  )
  // Any other failure passes through as it is.
  const blip = new Error('connection reset')
  await assert.rejects(
    produceBounded(() => Promise.reject(blip), messages),
    (error: unknown) => error === blip,
  )
})

test('produceBounded: the end offset of each partition is where its last slice put its last record', async () => {
  const next = new Map<string, bigint>()
  const sends: number[] = []
  const ends = await produceBounded(
    async (slice) => {
      sends.push(slice.length)
      const offsets = []
      for (const partition of new Set(slice.map((m) => m.partition!))) {
        const key = `t:${partition}`
        const base = next.get(key) ?? 100n
        next.set(key, base + BigInt(slice.filter((m) => m.partition === partition).length))
        offsets.push({ topic: 't', partition, offset: base })
      }
      return { offsets }
    },
    [message(0, 600), message(1, 600), message(0, 600), message(0, 600)],
    1_300,
  )
  assert.deepEqual(sends, [2, 2])
  assert.deepEqual(
    ends,
    new Map([
      ['t:0', 103n],
      ['t:1', 101n],
    ]),
  )
})

test("runtime: one batch whose output for one partition is 2.4 MiB (over the broker's 1 MiB record-batch limit) commits", async (t) => {
  const applicationId = uniqueName('rt-big')
  const input = uniqueName('rt-big-in')
  const output = uniqueName('rt-big-out')
  await createTopics(t, [input, output], 1)
  await deleteAfter(t, [`${applicationId}-input-changelog`, `${applicationId}-dead-letter`])
  const builder = new TopologyBuilder({ applicationId })
  builder
    .table<{ n: number }>(input, { name: 'input' })
    .mapValues((v) => ({ n: v.n, padding: 'x'.repeat(20_000) }))
    .to(output)
  const topology = builder.build().compile({ partitions: 1 })

  const producer = new Producer({ clientId: uniqueName('rt-big'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => producer.close())
  const RECORDS = 120
  await producer.send({
    messages: Array.from({ length: RECORDS }, (_, n) => ({
      topic: input,
      partition: 0,
      key: Buffer.from(`k${n}`),
      value: Buffer.from(JSON.stringify({ n })),
    })),
  })

  const runtime = new KafkaRuntime(topology, {
    brokers: endpoints.kafkaBrokers,
    stores: new Map([['input', new MemoryStateStore('input')]]),
    batchMaxRecords: 1_000,
    fetchMaxWaitMs: 100,
    sessionTimeoutMs: 6_000,
  })
  const running = runStopped(t, runtime, 'the runtime')
  const records = await readCommitted(output, 1, (r) => r.length >= RECORDS, 60_000)
  runtime.stop()
  assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')
  assert.equal(records.length, RECORDS)
  assert.deepEqual(
    records.map((r) => JSON.parse(r.value!.toString()).n),
    Array.from({ length: RECORDS }, (_, n) => n),
  )
  assert.equal(runtime.stats.aborts, 0, 'no batch was refused and retried')
  assert.ok(
    runtime.stats.batches <= 3,
    `the records were read in few batches (${runtime.stats.batches}), so one batch carried well over 1 MiB`,
  )
})
