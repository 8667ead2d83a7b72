import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Topology, TopologyBuilder } from '../../src/dsl/index.ts'

interface Ticket {
  readonly customerId: string
  readonly subject: string
}
interface Customer {
  readonly name: string
}

test('build() returns a frozen, validated topology; stateless nodes get Kafka-style generated names', () => {
  const b = new TopologyBuilder({ applicationId: 'support' })
  const customers = b.table<Customer>('crm.customers', { name: 'customers' })
  b.table<Ticket>('tickets', { name: 'tickets' })
    .filter((t) => t.subject !== '')
    .join(customers, {
      name: 'join-customers',
      foreignKey: (t) => t.customerId,
      joiner: (t, c) => ({ subject: t.subject, customer: c.name }),
    })
    .mapValues((doc) => doc)
    .to('docs')
  const topology = b.build()
  assert.ok(topology instanceof Topology)
  assert.equal(topology.graph.deadLetterTopic, 'support-dead-letter')
  assert.deepEqual(
    topology.graph.nodes.map((n) => [n.kind, n.name, n.named, n.inputs]),
    [
      ['table-source', 'customers', true, []],
      ['table-source', 'tickets', true, []],
      ['filter', 'KTABLE-FILTER-0000000002', false, ['tickets']],
      ['fk-join', 'join-customers', true, ['KTABLE-FILTER-0000000002', 'customers']],
      ['map-values', 'KTABLE-MAPVALUES-0000000004', false, ['join-customers']],
      ['sink', 'KTABLE-SINK-0000000005', false, ['KTABLE-MAPVALUES-0000000004']],
    ],
  )
  assert.ok(Object.isFrozen(topology.graph))
  assert.ok(Object.isFrozen(topology.graph.nodes))
  for (const node of topology.graph.nodes) assert.ok(Object.isFrozen(node) && Object.isFrozen(node.inputs))
  assert.throws(() => (topology.graph.nodes as unknown[]).push({}), TypeError)
})

test('the joiner of a left join sees a nullable right row; of an inner join, a present one', () => {
  const b = new TopologyBuilder({ applicationId: 'app', deadLetterTopic: 'app.dlq' })
  const customers = b.table<Customer>('c', { name: 'c' })
  const tickets = b.table<Ticket>('t', { name: 't' })
  tickets.join(customers, { name: 'inner', foreignKey: (t) => t.customerId, joiner: (_t, c) => c.name }).to('o1')
  tickets
    .join(customers, {
      name: 'left',
      type: 'left',
      // @ts-expect-error: in a left join the right row may be null
      joiner: (_t, c) => c.name,
      foreignKey: (t) => t.customerId,
    })
    .to('o2')
  const topology = b.build()
  assert.equal(topology.graph.deadLetterTopic, 'app.dlq')
  assert.deepEqual(
    topology.graph.nodes.filter((n) => n.kind === 'fk-join').map((n) => [n.name, n.kind === 'fk-join' && n.joinType]),
    [
      ['inner', 'inner'],
      ['left', 'left'],
    ],
  )
})

test('a built topology serialises (functions omitted) and describes itself', () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table('in', { name: 'in' }).to('out', { name: 'out' })
  const topology = b.build()
  const json = JSON.parse(JSON.stringify(topology))
  assert.deepEqual(json.nodes, [
    { kind: 'table-source', name: 'in', named: true, inputs: [], topic: 'in', format: 'compacted' },
    { kind: 'sink', name: 'out', named: true, inputs: ['in'], topic: 'out' },
  ])
  assert.match(topology.describe(), /^Topology: app\n/)
})
