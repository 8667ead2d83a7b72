// Table resets on the Kafka runtime with Redis stores (src/operators/table-reset.ts): a TRUNCATE read on
// one partition removes every ticket on both partitions through the reset topic, the deletes reach the
// join's output, a change older than the truncate arriving after it is dropped, and a re-snapshot
// removes the tickets it did not read again while keeping the changes after it. Each reset is audited
// per partition (TRUNCATED, SNAPSHOT_RESET with the rows removed) on the table's audit topic, in the
// batch's transaction, and counted in ragstream_table_resets_total / ragstream_table_reset_rows_total.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { cdcTableDecoder } from '../../src/cdc/table-decoder.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import type { AuditEventValue } from '../../src/governance/audit.ts'
import { Metrics } from '../../src/observability/metrics.ts'
import { instrumentProcessor } from '../../src/ops/instrument.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { partitionForKey } from '../../src/topology/partitioner.ts'
import { redisStoresFor } from '../support/local.ts'
import { deleteAfter, runStopped } from '../support/runtime-waits.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd } from '../support/topic-offsets.ts'

const PARTITIONS = 2
type Row = Record<string, unknown>
type Flag = 'first' | 'true' | 'last' | 'false'

function envelope(op: 'c' | 'r' | 't', lsn: number, row: Row | null, flag: Flag = 'false'): Buffer {
  return Buffer.from(
    JSON.stringify({
      before: null,
      after: row,
      source: { ts_ms: 1_000 + lsn, lsn, schema: 'public', table: 't', snapshot: flag },
      op,
      ts_ms: 1_000 + lsn,
    }),
  )
}

test('runtime: TRUNCATE and a re-snapshot of a CDC table reach every partition and the join downstream', async (t) => {
  const app = uniqueName('resets')
  const topics = {
    tickets: `${app}.public.tickets`,
    customers: `${app}.public.customers`,
    out: `${app}-out`,
    audit: `${app}-audit`,
  }
  await createTopics(t, [topics.tickets, topics.customers, topics.out, topics.audit], PARTITIONS)
  const decoder = () => cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }))
  const b = new TopologyBuilder({ applicationId: app })
  const customers = b.cdcTable<Row>(topics.customers, { name: 'customers', ...decoder() })
  b.cdcTable<Row>(topics.tickets, { name: 'tickets', ...decoder(), audit: { topic: topics.audit } })
    .join(customers, {
      name: 'jc',
      foreignKey: (ticket) => String(ticket.customer_id as number),
      joiner: (ticket, customer) => ({ id: ticket.id, customer: customer.name }),
    })
    .to(topics.out)
  const topology = b.build().compile({ partitions: PARTITIONS })
  await deleteAfter(
    t,
    topology.topics.filter((s) => s.role !== 'source' && s.role !== 'sink').map((s) => s.name),
  )
  const events: RuntimeEvent[] = []
  const metrics = new Metrics()
  const instrumented = instrumentProcessor(topology, metrics, { onEvent: (e) => events.push(e) })
  const runtime = new KafkaRuntime(instrumented.topology, {
    brokers: endpoints.kafkaBrokers,
    stores: redisStoresFor(t, app, topology.storeNames),
    instanceId: 'resets',
    sessionTimeoutMs: 6_000,
    fetchMaxWaitMs: 50,
    // Small batches: a partition's row deletes span several, so their count is carried in the table's state.
    batchMaxRecords: 3,
    onEvent: instrumented.onEvent,
    onBatchStage: instrumented.onBatchStage,
  })
  void runStopped(t, runtime, 'the resets runtime')
  const producer = new Producer({ clientId: uniqueName('resets-in'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  const admin = new Admin({ clientId: uniqueName('resets-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(async () => {
    await producer.close().catch(() => {})
    await admin.close().catch(() => {})
  })

  const keyOf = (id: number) => Buffer.from(JSON.stringify({ id }))
  const partitionOf = (id: number) => partitionForKey(keyOf(id), PARTITIONS)
  const send = (topic: string, records: { id: number | null; value: Buffer; partition?: number }[]) =>
    producer.send({
      messages: records.map((r) => ({
        topic,
        key: r.id === null ? undefined : keyOf(r.id),
        value: r.value,
        partition: r.partition ?? partitionOf(r.id!),
      })),
    })
  const ticket = (id: number, lsn: number, op: 'c' | 'r' = 'c', flag: Flag = 'false') => ({
    id,
    value: envelope(op, lsn, { id, customer_id: 1 + (id % 2), subject: `ticket ${id}` }, flag),
  })
  /** The join's output as a table: ticket ids, sorted. */
  const view = async (): Promise<number[]> => {
    const rows = new Map<string, unknown>()
    for (const r of await readToEnd(admin, PARTITIONS, [topics.out])) {
      if (r.value === null) rows.delete(r.key!.toString())
      else rows.set(r.key!.toString(), r.value)
    }
    return [...rows.keys()].map(Number).sort((x, y) => x - y)
  }
  const converges = async (phase: string, expected: number[]): Promise<void> => {
    const deadline = Date.now() + 60_000
    for (;;) {
      const got = await view()
      if (JSON.stringify(got) === JSON.stringify(expected)) return
      assert.ok(
        Date.now() < deadline,
        `${phase}: the output holds ${got.join(',')}, want ${expected.join(',')}; last events ${JSON.stringify(events.slice(-3), (_, v) => (typeof v === 'bigint' ? String(v) : v))}`,
      )
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
  /** The audit events of one kind, once every partition wrote one (polled: the reset's done records may lag its deletes). */
  const audited = async (kind: string, partitions: number): Promise<AuditEventValue[]> => {
    const deadline = Date.now() + 60_000
    for (;;) {
      const all = (await readToEnd(admin, PARTITIONS, [topics.audit])).map(
        (r) => JSON.parse(r.value!.toString()) as AuditEventValue,
      )
      const found = all.filter((a) => a.kind === kind)
      if (found.length >= partitions) return found
      assert.ok(Date.now() < deadline, `${partitions} ${kind} audit events, got ${JSON.stringify(all)}`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
  /** A counter's sample, once it reached `want` (metrics apply when the batch's transaction commits). */
  const counted = async (sample: string, want: number): Promise<void> => {
    const deadline = Date.now() + 30_000
    const value = async () =>
      Number(
        (await metrics.text())
          .split('\n')
          .find((line) => line.startsWith(`${sample} `))
          ?.split(' ')[1] ?? 0,
      )
    while ((await value()) < want && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200))
    assert.equal(await value(), want, sample)
  }
  const label = (kind: string) => `{topology="${app}",table="tickets",kind="${kind}"}`

  // Ids on each partition, so both partitions hold rows and see changes.
  const ids = Array.from({ length: 60 }, (_, i) => i + 1)
  const on = (p: number) => ids.filter((id) => partitionOf(id) === p)
  const [p0, p1] = [on(0), on(1)]

  await send(topics.customers, [
    { id: 1, value: envelope('c', 10, { id: 1, name: 'Ada' }) },
    { id: 2, value: envelope('c', 11, { id: 2, name: 'Grace' }) },
  ])
  const first = [...p0.slice(0, 4), ...p1.slice(0, 4)].sort((x, y) => x - y)
  await send(
    topics.tickets,
    first.map((id) => ticket(id, 100 + id)),
  )
  await converges('the first tickets', first)

  // TRUNCATE, read on partition 1; then one ticket written after it, and one committed before it that
  // reaches its partition after the truncate (a lagging partition): dropped.
  const [after, stale] = [p0[4], p1[4]]
  await send(topics.tickets, [{ id: null, value: envelope('t', 500, null), partition: 1 }])
  await send(topics.tickets, [ticket(after, 510), ticket(stale, 490)])
  await converges('TRUNCATE', [after])
  const truncated = await audited('TRUNCATED', PARTITIONS)
  assert.deepEqual(truncated.map((a) => a.counts.partition).sort(), [0, 1], 'one event per partition')
  for (const a of truncated)
    assert.deepEqual([a.counts.source_position, a.at_ms, a.reason], [500, 1_500, 'tickets (public.t)'])
  // Partition 0 removed its 4 tickets (the one written after the truncate stays). Partition 1 removed
  // its 4, and the stale ticket too when it reached the table before the reset did (the table then
  // held it, and the truncate removed it); after the reset, it is dropped where it enters.
  const removed = new Map(truncated.map((a) => [a.counts.partition, a.counts.rows_removed]))
  assert.equal(removed.get(0), 4)
  assert.ok([4, 5].includes(removed.get(1)!), `partition 1 removed ${removed.get(1)}`)
  await counted(`ragstream_table_resets_total${label('truncate')}`, 2)
  await counted(`ragstream_table_reset_rows_total${label('truncate')}`, 4 + removed.get(1)!)

  // Tickets, then a re-snapshot that does not read two of them (deleted while no connector ran), then
  // streaming again on both partitions.
  const more = [...p0.slice(5, 9), ...p1.slice(5, 9)]
  await send(
    topics.tickets,
    more.map((id) => ticket(id, 520 + id)),
  )
  await converges(
    'more tickets',
    [after, ...more].sort((x, y) => x - y),
  )
  const gone = [p0[6], p1[7]]
  const read = [after, ...more].filter((id) => !gone.includes(id)).sort((x, y) => x - y)
  await send(
    topics.tickets,
    read.map((id, i) => ticket(id, 600, 'r', i === 0 ? 'first' : i === read.length - 1 ? 'last' : 'true')),
  )
  const streamed = [p0[10], p1[10]]
  await send(
    topics.tickets,
    streamed.map((id) => ticket(id, 700 + id)),
  )
  await converges(
    'a re-snapshot',
    [...read, ...streamed].sort((x, y) => x - y),
  )
  const resnapshot = await audited('SNAPSHOT_RESET', PARTITIONS)
  assert.deepEqual(
    resnapshot.map((a) => [a.counts.partition, a.counts.rows_removed]).sort(),
    [
      [0, 1],
      [1, 1],
    ],
    'each partition removed the one ticket its snapshot did not read',
  )
  await counted(`ragstream_table_reset_rows_total${label('snapshot')}`, 2)

  assert.deepEqual(
    await readToEnd(admin, PARTITIONS, [topology.topics.find((s) => s.role === 'dead-letter')!.name]),
    [],
    'nothing was dead-lettered',
  )
})
