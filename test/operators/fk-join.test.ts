// The FK join (KIP-213): the shared semantics suite on the test driver, plus driver-only cases.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import { fkJoinCases, fkJoinTopology, type FkJoinRunner, type OrderDetail } from '../support/fk-join-cases.ts'

const driverRunner: FkJoinRunner = {
  async start(type, partitions) {
    const topics = { applicationId: `fk-${type}`, orders: 'orders', products: 'products', output: 'order-details' }
    const driver = new TopologyTestDriver(fkJoinTopology(type, topics), { partitions })
    return {
      topics,
      send: (topic, key, value) => driver.pipe(topic, key, value),
      settle: async () => {},
      outputsFor: async (key) => driver.allOutput(topics.output).filter((r) => r.key === key).map((r) => r.value as OrderDetail | null),
      outputTable: async () => driver.readTable(topics.output) as Map<string, OrderDetail>,
      close: async () => {
        const deadLetters = driver.readDeadLetters()
        await driver.close()
        if (deadLetters.length > 0) throw new Error(`unexpected dead letters: ${JSON.stringify(deadLetters.map((r) => r.headers))}`)
      },
    }
  },
}

for (const fkCase of fkJoinCases) {
  test(`fk join on the test driver — ${fkCase.name}`, () => fkCase.run(driverRunner))
}

// Driver-only cases: batching makes the interleavings deterministic.

const topics = { applicationId: 'fk', orders: 'orders', products: 'products', output: 'order-details' }

test('a response to a left row that changed since (stale hash) is dropped', async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('inner', topics), { partitions: 3 })
  await driver.pipe('products', 'p1', { name: 'widget', price: 5 })
  await driver.pipeBatch([
    { topic: 'orders', key: 'o1', value: { product: 'p1', qty: 1 } },
    { topic: 'orders', key: 'o1', value: { product: 'p1', qty: 2 } },
  ])
  const responses = driver.allOutput('fk-join-products-response-repartition').filter((r) => r.key === 'o1')
  assert.equal(responses.length, 2, 'both subscriptions were answered')
  assert.deepEqual(driver.readOutput('order-details').map((r) => r.value), [{ qty: 2, product: 'widget', price: 5 }])
})

test('a foreign-key move inside one batch leaves no subscription on the old key', async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('left', topics), { partitions: 3 })
  await driver.pipeBatch([
    { topic: 'products', key: 'p1', value: { name: 'widget', price: 5 } },
    { topic: 'products', key: 'p2', value: { name: 'gadget', price: 7 } },
  ])
  await driver.pipeBatch([
    { topic: 'orders', key: 'o1', value: { product: 'p1', qty: 1 } },
    { topic: 'orders', key: 'o1', value: { product: 'p2', qty: 1 } },
  ])
  assert.deepEqual(driver.readTable('order-details').get('o1'), { qty: 1, product: 'gadget', price: 7 })
  const index = driver.readStore('join-products-subscriptions')
  assert.equal(index.has('p1'), false)
  assert.deepEqual((index.get('p2') as unknown[][]).map((entry) => entry[0]), ['o1'])
  await driver.pipe('orders', 'o1', null)
  assert.equal(driver.readStore('join-products-subscriptions').size, 0, 'a left delete unsubscribes')
})

test('right rows on a partition their key does not hash to (e.g. Debezium JSON keys) are re-homed and still join', async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('left', topics), { partitions: 3 })
  const wrong = (partitionForString('p1', 3) + 1) % 3
  await driver.pipe('products', 'p1', { name: 'widget', price: 5 }, { partition: wrong })
  await driver.pipe('orders', 'o1', { product: 'p1', qty: 1 })
  assert.deepEqual(driver.readTable('order-details').get('o1'), { qty: 1, product: 'widget', price: 5 })
  const rehomed = driver.allOutput('fk-join-products-right-repartition')
  assert.deepEqual(rehomed.map((r) => [r.key, r.partition]), [['p1', partitionForString('p1', 3)]])
  await driver.pipe('products', 'p1', { name: 'widget', price: 6 }, { partition: wrong })
  assert.deepEqual(driver.readTable('order-details').get('o1'), { qty: 1, product: 'widget', price: 6 })
  await driver.pipe('products', 'p1', null, { partition: wrong })
  assert.deepEqual(driver.readTable('order-details').get('o1'), { qty: 1, product: null, price: null })
  assert.equal(driver.readStore('join-products-right').size, 0, 'the re-homed row is deleted too')
  await driver.pipe('orders', 'o2', { product: 'p1', qty: 2 })
  assert.deepEqual(driver.readTable('order-details').get('o2'), { qty: 2, product: null, price: null })
  assert.deepEqual(driver.readDeadLetters(), [])
})

test('a throwing joiner dead-letters the record and the line keeps moving', async () => {
  const builder = new TopologyBuilder({ applicationId: 'boom' })
  const right = builder.table<{ ok: boolean }>('right', { name: 'right' })
  builder
    .table<{ fk: string }>('left', { name: 'left' })
    .join(right, {
      name: 'j',
      foreignKey: (l) => l.fk,
      joiner: (l, r) => {
        if (!r.ok) throw new Error('not ok')
        return { ...l, ...r }
      },
    })
    .to('out')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 2 })
  await driver.pipe('right', 'a', { ok: false })
  await driver.pipe('right', 'b', { ok: true })
  await driver.pipe('left', 'x', { fk: 'a' })
  await driver.pipe('left', 'y', { fk: 'b' })
  const [dead, ...more] = driver.readDeadLetters()
  assert.equal(more.length, 0)
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.node], 'j')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.topic], 'boom-j-response-repartition')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.message], 'not ok')
  assert.deepEqual([...driver.readTable('out').keys()], ['y'])
})
