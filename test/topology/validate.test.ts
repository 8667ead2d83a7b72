import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { ConfigError } from '../../src/errors.ts'
import { fkJoinNode } from '../../src/operators/fk-join/index.ts'
import { Topology } from '../../src/topology/topology.ts'

function problemsOf(build: () => unknown): string[] {
  try {
    build()
  } catch (error) {
    assert.ok(error instanceof ConfigError)
    assert.equal(error.code, 'RS_TOPOLOGY_INVALID')
    return error.problems.map((p) => `${p.path}: ${p.message}`)
  }
  assert.fail('expected a ConfigError')
}

test('every problem is reported at once, each with its path', () => {
  const problems = problemsOf(() => {
    const b = new TopologyBuilder({ applicationId: 'bad app' })
    const customers = b.table('crm.customers', {} as { name: string })
    const tickets = b.cdcTable('pg.tickets', { name: 'tickets' } as never)
    // @ts-expect-error: a join needs a name and a foreign key
    tickets.join(customers, { joiner: (t: unknown) => t }).to('out')
    return b.build()
  })
  assert.deepEqual(problems, [
    '/topology/applicationId: required: letters, digits, ".", "_" and "-" only',
    '/topology/deadLetterTopic: required: a topic name (letters, digits, ".", "_", "-"; at most 249 characters)',
    '/topology/nodes/KTABLE-SOURCE-0000000000/name: required: a table-source is stateful; its name is its store and changelog identity',
    '/topology/nodes/tickets/decode: required for a CDC table (e.g. the Debezium decoder from src/cdc)',
    '/topology/nodes/KTABLE-FK-JOIN-0000000002/name: required: a fk-join is stateful; its name is its store and changelog identity',
    '/topology/nodes/KTABLE-FK-JOIN-0000000002/foreignKey: required: a function (leftValue) => rightKey',
  ])
})

test('the error message lists the problems, one per line', () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table('a', { name: 'a' })
  assert.throws(
    () => b.build(),
    (error: ConfigError) => {
      assert.equal(
        error.message,
        "invalid topology 'app':\n  /topology/nodes: no sink: write at least one output with .to(topic)",
      )
      assert.equal(error.retriable, false)
      return true
    },
  )
})

test('names, topics and stores must be unique; sinks may not write sources or internal topics', () => {
  const problems = problemsOf(() => {
    const b = new TopologyBuilder({ applicationId: 'app' })
    const a = b.table('in', { name: 'a' })
    b.table('in', { name: 'a' }).to('in')
    a.stage({ name: 'chunk', kind: 'chunk', stores: ['a'], processor: { process: (items) => items.map(() => []) } }).to(
      'app-a-changelog',
    )
    return b.build()
  })
  assert.deepEqual(problems, [
    "/topology/nodes/a/name: duplicate: another node is already named 'a'",
    "/topology/nodes/a/stores/0: store 'a' is already owned by 'a'",
    "/topology/nodes/a/topic: 'in' is already read by table 'a'",
    "/topology/nodes/KTABLE-SINK-0000000002/topic: 'in' is also a source topic of this topology (a cycle)",
    "/topology/nodes/chunk/stores/0: store 'a' is already owned by 'a'",
    "/topology/nodes/KTABLE-SINK-0000000004/topic: 'app-a-changelog' is an internal topic of this topology",
  ])
})

test('a join reads tables (sources or join results), not stage outputs; stateful stages need names; functions are required', () => {
  const problems = problemsOf(() => {
    const b = new TopologyBuilder({ applicationId: 'app' })
    const left = b.table<{ fk: string }>('l', { name: 'l' })
    const right = b.table('r', { name: 'r' })
    const staged = left.stage<{ fk: string }>({
      kind: 'govern',
      stores: ['s'],
      processor: { process: (items) => items.map(() => []) },
    })
    staged.join(right, { name: 'j', foreignKey: (v) => v.fk, joiner: (l) => l }).to('out')
    const untyped = left as any // wrong types on purpose
    untyped
      .filter('nope')
      .mapValues(undefined)
      .join(right, { name: 'k', type: 'outer', foreignKey: 1, joiner: 2 })
      .to('out2')
    return b.build()
  })
  assert.deepEqual(problems, [
    '/topology/nodes/KTABLE-STAGE-0000000002/name: required: a stage with stores is stateful; its name identifies it',
    "/topology/nodes/j/inputs/0: 'KTABLE-STAGE-0000000002' must be a table (a source or a join result, then filter/mapValues only); a stage's output cannot be joined",
    '/topology/nodes/KTABLE-FILTER-0000000005/predicate: required: a function (value, key) => boolean',
    '/topology/nodes/KTABLE-MAPVALUES-0000000006/mapper: required: a function (value, key) => newValue',
    "/topology/nodes/k/type: must be 'inner' or 'left'",
    '/topology/nodes/k/foreignKey: required: a function (leftValue) => rightKey',
    '/topology/nodes/k/joiner: required: a function (leftValue, rightValue) => joinedValue',
  ])
})

test('inputs must exist and be built first', () => {
  const problems = problemsOf(
    () =>
      new Topology({
        applicationId: 'app',
        deadLetterTopic: 'app-dlq',
        nodes: [
          fkJoinNode(
            'j',
            true,
            'ghost',
            'phantom',
            'inner',
            () => 'x',
            () => ({}),
          ),
        ],
      }),
  )
  assert.deepEqual(problems, [
    "/topology/nodes/j/inputs/0: unknown node 'ghost' (inputs must be built before the node that reads them)",
    "/topology/nodes/j/inputs/1: unknown node 'phantom' (inputs must be built before the node that reads them)",
    '/topology/nodes: no source: read at least one table',
    '/topology/nodes: no sink: write at least one output with .to(topic)',
  ])
})

test('source and sink topics must be legal Kafka topic names', () => {
  const problems = problemsOf(() => {
    const b = new TopologyBuilder({ applicationId: 'app' })
    b.table('orders/v1', { name: 'orders' }).to('')
    b.table('..', { name: 'other' }).to('x'.repeat(250))
    return b.build()
  })
  assert.deepEqual(problems, [
    `/topology/nodes/orders/topic: 'orders/v1' is not a legal topic name (letters, digits, ".", "_" and "-" only)`,
    '/topology/nodes/KTABLE-SINK-0000000001/topic: required',
    "/topology/nodes/other/topic: '..' is not a legal topic name",
    '/topology/nodes/KTABLE-SINK-0000000003/topic: a topic name has at most 249 characters',
  ])
})

test('internal topic names longer than Kafka allows are refused at build time', () => {
  const problems = problemsOf(() => {
    const b = new TopologyBuilder({ applicationId: 'app' })
    b.table('in', { name: 'x'.repeat(240) }).to('out')
    return b.build()
  })
  assert.deepEqual(problems, [
    `/topology/nodes/${'x'.repeat(240)}/name: internal topic 'app-${'x'.repeat(240)}-changelog' is longer than 249 characters`,
  ])
})
