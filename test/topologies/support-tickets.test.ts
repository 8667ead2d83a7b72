import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import topology from '../../topologies/support-tickets.ts'

test('support-tickets: describe text is pinned', () => {
  assert.equal(
    topology.describe(),
    `Topology: support-tickets
   Sub-topology: 0
    Source: customers-source (topics: [crm.customers])
      --> customers
    Processor: customers (stores: [customers]) [table: compacted]
      --> join-customers-right-change
      <-- customers-source
    Source: join-customers-subscription-source (topics: [support-tickets-join-customers-subscription-repartition])
      --> join-customers-subscription-receive
    Processor: join-customers-subscription-receive (stores: [join-customers-subscriptions, customers, join-customers-right])
      --> join-customers-response-sink
      <-- join-customers-subscription-source
    Processor: join-customers-right-change (stores: [join-customers-subscriptions])
      --> join-customers-response-sink, join-customers-right-sink
      <-- customers
    Sink: join-customers-right-sink (topic: support-tickets-join-customers-right-repartition)
      <-- join-customers-right-change
    Source: join-customers-right-source (topics: [support-tickets-join-customers-right-repartition])
      --> join-customers-right-receive
    Processor: join-customers-right-receive (stores: [join-customers-subscriptions, join-customers-right])
      --> join-customers-response-sink
      <-- join-customers-right-source
    Sink: join-customers-response-sink (topic: support-tickets-join-customers-response-repartition)
      <-- join-customers-subscription-receive, join-customers-right-change, join-customers-right-receive
   Sub-topology: 1
    Source: tickets-source (topics: [pg.public.tickets])
      --> tickets
    Source: tickets-reset-source (topics: [support-tickets-tickets-reset-repartition])
      --> tickets
    Processor: tickets (stores: [tickets]) [table: cdc, truncates and snapshots reset it]
      --> tickets-reset-sink, drop-spam
      <-- tickets-source, tickets-reset-source
    Sink: tickets-reset-sink (topic: support-tickets-tickets-reset-repartition)
      <-- tickets
    Processor: drop-spam (stores: [])
      --> join-customers-subscription-send
      <-- tickets
    Processor: join-customers-subscription-send (stores: [])
      --> join-customers-subscription-sink, join-customers
      <-- drop-spam
    Sink: join-customers-subscription-sink (topic: support-tickets-join-customers-subscription-repartition)
      <-- join-customers-subscription-send
    Source: join-customers-response-source (topics: [support-tickets-join-customers-response-repartition])
      --> join-customers
    Processor: join-customers (stores: [tickets]) [fk-join: left]
      --> to-document
      <-- join-customers-subscription-send, join-customers-response-source
    Processor: to-document (stores: [])
      --> KTABLE-SINK-0000000005
      <-- join-customers
    Sink: KTABLE-SINK-0000000005 (topic: support.documents)
      <-- to-document
Stores:
    customers (owner: customers, changelog: support-tickets-customers-changelog)
    tickets (owner: tickets, changelog: support-tickets-tickets-changelog)
    join-customers-subscriptions (owner: join-customers, changelog: support-tickets-join-customers-subscriptions-changelog)
    join-customers-right (owner: join-customers, changelog: support-tickets-join-customers-right-changelog)
Topics:
    source: crm.customers (partitions: external)
    source: pg.public.tickets (partitions: external)
    changelog: support-tickets-customers-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store customers
    changelog: support-tickets-tickets-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store tickets
    repartition: support-tickets-tickets-reset-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — truncates and completed snapshots of tickets, and the row deletes they cause
    changelog: support-tickets-join-customers-subscriptions-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-customers-subscriptions
    changelog: support-tickets-join-customers-right-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-customers-right
    repartition: support-tickets-join-customers-subscription-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-customers subscriptions, keyed by foreign key
    repartition: support-tickets-join-customers-response-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-customers responses, keyed by left key
    repartition: support-tickets-join-customers-right-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-customers right rows not on their key's partition, keyed by right key
    sink: support.documents (partitions: external)
    dead-letter: support-tickets-dead-letter (partitions: as source topics) (cleanup.policy=delete, retention.ms=604800000, segment.ms=86400000) — records that failed, with error and source position headers
`,
  )
})

const envelope = (op: string, after: unknown): unknown => ({ schema: {}, payload: { op, before: null, after } })

test('support-tickets: a customer reclassified to restricted changes every ticket document of that customer', async () => {
  const driver = new TopologyTestDriver(topology, { partitions: 3 })
  await driver.pipe('crm.customers', '42', { name: 'Ada', tier: 'gold', classification: 'internal' })
  for (const id of [1, 2, 3]) {
    await driver.pipe(
      'pg.public.tickets',
      JSON.stringify({ id }),
      envelope('c', { id, customer_id: 42, subject: `s${id}`, body: 'b', status: 'open' }),
    )
  }
  await driver.pipe(
    'pg.public.tickets',
    JSON.stringify({ id: 4 }),
    envelope('r', { id: 4, customer_id: 42, subject: 'spam', body: 'b', status: 'spam' }),
  )
  await driver.pipe('crm.customers', '42', { name: 'Ada', tier: 'gold', classification: 'restricted' })
  const documents = driver.readTable('support.documents')
  assert.deepEqual([...documents.keys()].sort(), ['1', '2', '3'])
  for (const document of documents.values())
    assert.equal((document as { classification: string }).classification, 'restricted')
  await driver.pipe('pg.public.tickets', JSON.stringify({ id: 2 }), envelope('d', null))
  assert.deepEqual([...driver.readTable('support.documents').keys()].sort(), ['1', '3'])
  assert.deepEqual(driver.readDeadLetters(), [])
})
