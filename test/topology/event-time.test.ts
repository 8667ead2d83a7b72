/**
 * Event time by Kafka Streams' rules (design point 10), in the test driver: a table source's change
 * time, carried by filter/mapValues, the later of a foreign-key join's two rows (through its
 * subscription and response topics), produced as every output's timestamp; and a chunk's lineage names
 * the change that made its version.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { cdcTableDecoder } from '../../src/cdc/table-decoder.ts'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { TopologyBuilder, TopologyTestDriver, definePolicy, type ChunkEvent } from '../../src/index.ts'

/** A Debezium JSON change (schemaless) of `row`, committed at `tsMs` at its source. */
const change = (row: Record<string, unknown>, tsMs: number, op = 'u') =>
  JSON.stringify({ op, after: row, source: { ts_ms: tsMs, lsn: tsMs, schema: 'crm', table: 't' }, ts_ms: tsMs + 5 })
const cdc = () => cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }))

interface Customer {
  readonly id: string
  readonly tier: string
}
interface Ticket {
  readonly id: string
  readonly customer: string
  readonly body: string
}

test('a table source takes its change time (Debezium ts_ms, else the record timestamp); filter and mapValues carry it to the output', async () => {
  const b = new TopologyBuilder({ applicationId: 'event-time-source' })
  b.cdcTable<Ticket>('crm.tickets', { name: 'tickets', ...cdc() })
    .filter((t) => t.body !== '')
    .mapValues((t) => ({ body: t.body.toUpperCase() }))
    .to('out')
  b.table<{ n: number }>('plain', { name: 'plain' }).to('plain-out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 2, startTime: 1_000_000 })
  await driver.pipe('crm.tickets', '{"id":"t1"}', change({ id: 't1', customer: 'c1', body: 'hi' }, 42_000), {
    timestamp: 999_000n,
  })
  await driver.pipe('plain', 'k', { n: 1 }, { timestamp: 7_000n })
  await driver.pipe('plain', 'k2', { n: 2 })
  const [out] = driver.readOutput('out')
  assert.equal(out.timestamp, 42_000n, 'the change time at the source, not the record timestamp')
  assert.deepEqual(
    driver.readOutput('plain-out').map((r) => r.timestamp),
    [7_000n, 1_000_000n],
    'a plain table: the record timestamp (the driver clock when none is given)',
  )
  // A delete's event time is its own change time.
  await driver.pipe(
    'crm.tickets',
    '{"id":"t1"}',
    JSON.stringify({ op: 'd', before: { id: 't1' }, source: { ts_ms: 50_000 } }),
  )
  const [deleted] = driver.readOutput('out')
  assert.deepEqual([deleted.value, deleted.timestamp], [null, 50_000n])
})

function joined(partitions: number) {
  const b = new TopologyBuilder({ applicationId: 'event-time-join' })
  const customers = b.cdcTable<Customer>('crm.customers', { name: 'customers', ...cdc() })
  b.cdcTable<Ticket>('crm.tickets', { name: 'tickets', ...cdc() })
    .join(customers, {
      name: 'join-customers',
      foreignKey: (t) => t.customer,
      joiner: (t, c) => ({ id: t.id, body: t.body, tier: c.tier }),
    })
    .to('joined')
  return new TopologyTestDriver(b.build(), { partitions, startTime: 10_000_000 })
}

test('a foreign-key join result takes the later of its two rows’ change times, through the subscription and response topics', async () => {
  // 8 partitions: the ticket keys and the customer key land on different tasks, so every result crosses both topics.
  const driver = joined(8)
  await driver.pipe('crm.customers', '{"id":"c1"}', change({ id: 'c1', tier: 'gold' }, 1_000))
  await driver.pipe('crm.tickets', '{"id":"t1"}', change({ id: 't1', customer: 'c1', body: 'a' }, 2_000))
  await driver.pipe('crm.tickets', '{"id":"t2"}', change({ id: 't2', customer: 'c1', body: 'b' }, 3_000))
  assert.deepEqual(
    driver.readOutput('joined').map((r) => [r.key, r.timestamp]),
    [
      ['t1', 2_000n],
      ['t2', 3_000n],
    ],
    'a left change: its own time (the later one)',
  )
  // The customer changes long after its tickets: both re-triggered results take the customer's change time.
  await driver.pipe('crm.customers', '{"id":"c1"}', change({ id: 'c1', tier: 'platinum' }, 600_000))
  const retriggered = driver.readOutput('joined')
  assert.deepEqual(retriggered.map((r) => [r.key, (r.value as { tier: string }).tier, r.timestamp]).sort(), [
    ['t1', 'platinum', 600_000n],
    ['t2', 'platinum', 600_000n],
  ])
  // Out of order: a ticket change stamped before the customer's latest change still takes the later time.
  await driver.pipe('crm.tickets', '{"id":"t1"}', change({ id: 't1', customer: 'c1', body: 'c' }, 500_000))
  assert.deepEqual(
    driver.readOutput('joined').map((r) => [r.key, r.timestamp]),
    [['t1', 600_000n]],
  )
  // The internal records carry event time too (the runtime produces them with it as their timestamp).
  const repartitions = driver.processor.topics.filter((t) => t.role === 'repartition').map((t) => t.name)
  const internal = repartitions.flatMap((topic) => driver.allOutput(topic))
  assert.ok(internal.length > 0)
  assert.ok(
    internal.every((r) => r.timestamp <= 600_000n),
    'internal records are stamped with event time, not the clock',
  )
})

const policy = definePolicy({
  name: 'event-time',
  version: '1',
  outputs: { all: { maxClassification: 'restricted' } },
  residency: () => 'all',
  subjects: (r) => [`customer:${String(r.metadata.customer)}`],
})

test('a chunk names the change that made its version: its own row’s, or the joined row’s that re-triggered it', async () => {
  const b = new TopologyBuilder({ applicationId: 'event-time-chunks' })
  const customers = b.cdcTable<Customer>('crm.customers', { name: 'customers', ...cdc() })
  b.cdcTable<Ticket>('crm.tickets', { name: 'tickets', ...cdc() })
    .join(customers, {
      name: 'join-customers',
      type: 'left',
      foreignKey: (t) => t.customer,
      // The chunks' lineage: the ticket's own position (the row it came from).
      joiner: (ticket, customer) => ({ ticket, customer, _source: (ticket as { _source?: unknown })._source }),
    })
    .govern({
      name: 'govern',
      policy,
      document: ({ ticket, customer }) => ({
        text: ticket.body,
        metadata: { customer: ticket.customer, tier: customer?.tier ?? null },
      }),
      joined: ({ customer }) => customer ?? {},
    })
    .chunk({ entityType: 'ticket', strategy: { kind: 'whole' } })
    .embed()
    .toChunks('rag.chunks.event-time')
  const driver = new TopologyTestDriver(b.build(), { partitions: 4, startTime: 90_000_000 })
  const chunks = (): { event: ChunkEvent; timestamp: bigint }[] =>
    driver
      .readOutput('rag.chunks.event-time')
      .filter((r) => r.value !== null && (r.value as ChunkEvent).chunk_id !== undefined)
      .map((r) => ({ event: r.value as ChunkEvent, timestamp: r.timestamp }))

  await driver.pipe('crm.customers', '{"id":"c1"}', change({ id: 'c1', tier: 'gold' }, 1_000))
  await driver.pipe(
    'crm.tickets',
    '{"id":"t1"}',
    change({ id: 't1', customer: 'c1', body: 'the printer is on fire' }, 2_000),
  )
  const [direct] = chunks()
  assert.equal(direct.event.lineage.source_topic, 'crm.tickets')
  assert.equal(direct.event.lineage.source_timestamp_ms, 2_000)
  assert.deepEqual(direct.event.lineage.change, {
    topic: 'crm.tickets',
    partition: direct.event.lineage.source_partition,
    offset: 0,
    timestamp_ms: 2_000,
    appended_at_ms: 90_000_000,
  })
  assert.equal(direct.timestamp, 2_000n)

  // Ten minutes later the customer changes: the ticket's chunk is re-emitted, caused by the customer's change.
  await driver.pipe('crm.customers', '{"id":"c1"}', change({ id: 'c1', tier: 'platinum' }, 602_000), {
    timestamp: 602_040n,
  })
  const [retriggered] = chunks()
  assert.equal(JSON.parse(retriggered.event.metadata).tier, 'platinum')
  assert.equal(retriggered.event.lineage.source_topic, 'crm.tickets', 'the entity’s own position is kept')
  assert.equal(retriggered.event.lineage.source_timestamp_ms, 2_000)
  assert.equal(retriggered.event.lineage.change?.topic, 'crm.customers')
  assert.equal(retriggered.event.lineage.change?.offset, 1)
  assert.equal(retriggered.event.lineage.change?.timestamp_ms, 602_000)
  assert.equal(retriggered.event.lineage.change?.appended_at_ms, 602_040, 'the customer change’s append time')
  assert.equal(retriggered.timestamp, 602_000n, 'the chunk record is produced at the change’s time')
})

test('the append time pairs with the event time: a join re-trigger takes the right change’s, a later joined row its own, across a second join’s topics', async () => {
  const b = new TopologyBuilder({ applicationId: 'event-time-append' })
  const customers = b.cdcTable<Customer>('crm.customers', { name: 'customers', ...cdc() })
  const products = b.cdcTable<{ id: string; name: string }>('crm.products', { name: 'products', ...cdc() })
  b.cdcTable<Ticket & { product: string }>('crm.tickets', { name: 'tickets', ...cdc() })
    .join(customers, {
      name: 'join-customers',
      foreignKey: (t) => t.customer,
      joiner: (t, c) => ({ ...t, tier: c.tier }),
    })
    .join(products, {
      name: 'join-products',
      foreignKey: (t) => t.product,
      joiner: (t, p) => ({ id: t.id, tier: t.tier, product: p.name }),
    })
    .to('joined')
  // 8 partitions: every result crosses both joins' subscription and response topics.
  const driver = new TopologyTestDriver(b.build(), { partitions: 8, startTime: 10_000_000 })
  const joined = () =>
    driver
      .readOutput('joined')
      .map((r) => [r.key, r.timestamp, r.appendedAt])
      .sort()
  await driver.pipe('crm.products', '{"id":"p1"}', change({ id: 'p1', name: 'Printer' }, 500), { timestamp: 600n })
  await driver.pipe('crm.customers', '{"id":"c1"}', change({ id: 'c1', tier: 'gold' }, 1_000), { timestamp: 1_500n })
  for (const [id, at] of [
    ['t1', 2_000],
    ['t2', 3_000],
  ] as const)
    await driver.pipe(
      'crm.tickets',
      JSON.stringify({ id }),
      change({ id, customer: 'c1', product: 'p1', body: id }, at),
      { timestamp: BigInt(at + 100) },
    )
  assert.deepEqual(joined(), [
    ['t1', 2_000n, 2_100],
    ['t2', 3_000n, 3_100],
  ])

  // The customer changes long after: both re-triggered results take its change's time and append time.
  await driver.pipe('crm.customers', '{"id":"c1"}', change({ id: 'c1', tier: 'platinum' }, 600_000), {
    timestamp: 600_250n,
  })
  assert.deepEqual(joined(), [
    ['t1', 600_000n, 600_250],
    ['t2', 600_000n, 600_250],
  ])

  // A ticket change that happened before the customer's but reached its topic later: the result takes the
  // customer's change (the later event time) and that change's append time, not the ticket record's.
  await driver.pipe(
    'crm.tickets',
    '{"id":"t1"}',
    change({ id: 't1', customer: 'c1', product: 'p1', body: 'again' }, 500_000),
    { timestamp: 700_000n },
  )
  assert.deepEqual(joined(), [['t1', 600_000n, 600_250]])
  assert.deepEqual(driver.readDeadLetters(), [])
})

test('a join’s borrowed append time crosses a plain repartition topic in its header: an aggregate of the results keeps the pair', async () => {
  const b = new TopologyBuilder({ applicationId: 'event-time-append-aggregate' })
  const customers = b.cdcTable<Customer>('crm.customers', { name: 'customers', ...cdc() })
  b.cdcTable<Ticket>('crm.tickets', { name: 'tickets', ...cdc() })
    .join(customers, {
      name: 'join-customers',
      foreignKey: (t) => t.customer,
      joiner: (t, c) => ({ id: t.id, tier: c.tier }),
    })
    .groupBy((t) => t.tier)
    .count({ name: 'per-tier' })
    .to('per-tier')
  const driver = new TopologyTestDriver(b.build(), { partitions: 8, startTime: 10_000_000 })
  await driver.pipe('crm.customers', '{"id":"c1"}', change({ id: 'c1', tier: 'gold' }, 600_000), {
    timestamp: 600_250n,
  })
  // A ticket change older than the customer's, appended later: the pair is the customer's change.
  await driver.pipe('crm.tickets', '{"id":"t1"}', change({ id: 't1', customer: 'c1', body: 'a' }, 500_000), {
    timestamp: 700_000n,
  })
  const repartitioned = driver.processor.topics
    .filter((t) => t.role === 'repartition' && t.name.includes('per-tier'))
    .flatMap((t) => driver.allOutput(t.name))
  assert.ok(
    repartitioned.some((r) => 'ragstream.appended' in r.headers),
    'the group-by record names its own append time',
  )
  assert.deepEqual(
    driver.readOutput('per-tier').map((r) => [r.key, r.value, r.timestamp, r.appendedAt]),
    [['gold', 1, 600_000n, 600_250]],
  )
})

test('a decoder’s unusable change time (negative, fractional, not a number) falls back to the record timestamp', async () => {
  const b = new TopologyBuilder({ applicationId: 'event-time-bad' })
  b.cdcTable<{ n: number }>('rows', {
    name: 'rows',
    decode: (key, value) => {
      const row = JSON.parse(value!.toString()) as { n: number; ts: unknown }
      return { key: key!.toString(), value: { n: row.n }, timestamp: row.ts as number }
    },
  }).to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  for (const [n, ts] of [
    [1, -5],
    [2, 1.5],
    [3, 'soon'],
    [4, 77],
  ] as const)
    await driver.pipe('rows', `k${n}`, { n, ts }, { timestamp: 9_000n })
  assert.deepEqual(
    driver.readOutput('out').map((r) => r.timestamp),
    [9_000n, 9_000n, 9_000n, 77n],
  )
  assert.deepEqual(driver.readDeadLetters(), [])
})
