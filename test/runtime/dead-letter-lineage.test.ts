// Dead letters of later stages on the real runtime name the source change that led there (issue 13):
// a customer change re-triggers a join through internal topics (a re-homed right row with its origin
// header, a response pack with one origin per item); the joiner's failure and an output too large to
// produce (the runtime's own dead letter) both name the customers record, and the internal record.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { DEAD_LETTER_HEADERS as H } from '../../src/runtime/dead-letter.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { SourceRecord } from '../../src/runtime/task.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd } from '../support/topic-offsets.ts'
import { deleteAfter, runStopped } from '../support/runtime-waits.ts'

const PARTITIONS = 2

interface Ticket {
  readonly customer: string
}
interface Customer {
  readonly ok: boolean
  readonly pad?: number
}

test('runtime: a joiner failure and a too-large join output caused by a customer change name the customers record as their source', async (t) => {
  const app = uniqueName('lineage')
  const topics = { tickets: `${app}-tickets`, customers: `${app}-customers`, out: `${app}-out` }
  await createTopics(t, [topics.tickets, topics.customers, topics.out], PARTITIONS)
  const builder = new TopologyBuilder({ applicationId: app })
  const customers = builder.table<Customer>(topics.customers, { name: 'customers' })
  builder
    .table<Ticket>(topics.tickets, { name: 'tickets' })
    .join(customers, {
      name: 'jc',
      foreignKey: (ticket) => ticket.customer,
      joiner: (ticket, customer) => {
        if (!customer.ok) throw new Error('customer not ok')
        return { ...ticket, pad: 'x'.repeat(customer.pad ?? 0) }
      },
    })
    .to(topics.out)
  const topology = builder.build().compile({ partitions: PARTITIONS })
  await deleteAfter(
    t,
    topology.topics.filter((s) => s.role !== 'source' && s.role !== 'sink').map((s) => s.name),
  )
  const events: RuntimeEvent[] = []
  const runtime = new KafkaRuntime(topology, {
    brokers: endpoints.kafkaBrokers,
    stores: new Map(topology.storeNames.map((name) => [name, new MemoryStateStore(name)])),
    instanceId: 'lineage',
    sessionTimeoutMs: 6_000,
    fetchMaxWaitMs: 50,
    maxRecordBytes: 4096,
    onEvent: (e) => events.push(e),
  })
  void runStopped(t, runtime, 'the lineage runtime')
  const producer = new Producer({ clientId: uniqueName('lineage-in'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  const admin = new Admin({ clientId: uniqueName('lineage-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(async () => {
    await producer.close().catch(() => {})
    await admin.close().catch(() => {})
  })
  const send = async (topic: string, key: string, value: unknown, partition = partitionForString(key, PARTITIONS)) => {
    const result = await producer.send({
      messages: [{ topic, partition, key: Buffer.from(key), value: Buffer.from(JSON.stringify(value)) }],
    })
    return { partition, offset: result.offsets![0].offset }
  }
  const deadLetters = async (): Promise<SourceRecord[]> =>
    readToEnd(admin, PARTITIONS, [topology.topics.find((s) => s.role === 'dead-letter')!.name])
  /** Polls `condition` until it holds; fails naming `what` and the runtime's last events after a minute. */
  const poll = async (what: string, condition: () => Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + 60_000
    while (!(await condition())) {
      assert.ok(
        Date.now() < deadline,
        `timed out waiting for ${what}: ${JSON.stringify(events.slice(-5), (_, v) => (typeof v === 'bigint' ? String(v) : v))}`,
      )
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
  const headers = (r: SourceRecord) => Object.fromEntries([...r.headers].map(([k, v]) => [k, v.toString('utf8')]))

  // c-bad: home partition; c-far: produced to the other partition, so it is re-homed through the
  // right repartition topic (its origin in a header) before it answers its subscribers.
  await send(topics.customers, 'c-bad', { ok: true })
  await send(topics.customers, 'c-far', { ok: true }, 1 - partitionForString('c-far', PARTITIONS))
  await send(topics.customers, 'c-big', { ok: true })
  await send(topics.tickets, 't1', { customer: 'c-bad' })
  await send(topics.tickets, 't2', { customer: 'c-far' })
  await send(topics.tickets, 't3', { customer: 'c-big' })
  await poll('the three joined tickets', async () => (await readToEnd(admin, PARTITIONS, [topics.out])).length >= 3)
  const bad = await send(topics.customers, 'c-bad', { ok: false })
  const far = await send(topics.customers, 'c-far', { ok: false }, 1 - partitionForString('c-far', PARTITIONS))
  const big = await send(topics.customers, 'c-big', { ok: true, pad: 10_000 })
  let dead: SourceRecord[] = []
  await poll('three dead letters', async () => (dead = await deadLetters()).length >= 3)
  const byKey = new Map(dead.map((r) => [headers(r)[H.sourceKey], headers(r)]))
  assert.deepEqual([...byKey.keys()].sort(), ['c-bad', 'c-big', 'c-far'])
  for (const [key, at, code, node] of [
    ['c-bad', bad, 'RS_RECORD_INVALID', 'jc'],
    ['c-far', far, 'RS_RECORD_INVALID', 'jc'],
    ['c-big', big, 'RS_RECORD_TOO_LARGE', 'runtime'],
  ] as const) {
    const h = byKey.get(key)!
    assert.deepEqual(
      [h[H.code], h[H.node], h[H.topic], h[H.partition], h[H.offset]],
      [code, node, topics.customers, String(at.partition), String(at.offset)],
      key,
    )
    assert.equal(h[H.inputTopic], `${app}-jc-response-repartition`, key)
  }
  assert.equal(byKey.get('c-big')![H.outputTopic], topics.out)
  assert.equal(runtime.stats.deadLettered, 1)
})
