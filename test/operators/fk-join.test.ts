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

/** Deterministic PRNG (mulberry32), so a failing seed can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

for (const type of ['inner', 'left'] as const) {
  test(`${type}: seeded random changes on both sides keep the output equal to the join recomputed from scratch`, async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const random = prng(seed)
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
      const partitions = 1 + Math.floor(random() * 4)
      const driver = new TopologyTestDriver(fkJoinTopology(type, topics), { partitions })
      const orderKeys = Array.from({ length: 12 }, (_, i) => `o${i}`)
      const productKeys = Array.from({ length: 5 }, (_, i) => `p${i}`)
      // Some products live on a partition their key does not hash to (as with Debezium keys): stable per key.
      const productPartition = new Map(productKeys.map((k) => [k, random() < 0.4 ? Math.floor(random() * partitions) : partitionForString(k, partitions)]))
      const orders = new Map<string, { product: string | null; qty: number }>()
      const products = new Map<string, { name: string; price: number }>()
      for (let step = 0; step < 60; step++) {
        const batch = Array.from({ length: 1 + Math.floor(random() * 4) }, () => {
          if (random() < 0.6) {
            const key = pick(orderKeys)
            const value = random() < 0.2 ? null : { product: random() < 0.1 ? null : pick([...productKeys, 'nowhere']), qty: Math.floor(random() * 4) }
            if (value === null) orders.delete(key)
            else orders.set(key, value)
            return { topic: 'orders', key, value }
          }
          const key = pick(productKeys)
          const value = random() < 0.25 ? null : { name: `${key}-${step}`, price: Math.floor(random() * 100) }
          if (value === null) products.delete(key)
          else products.set(key, value)
          return { topic: 'products', key, value, partition: productPartition.get(key) }
        })
        await driver.pipeBatch(batch)
        const expected = new Map<string, unknown>()
        for (const [key, order] of orders) {
          if (order.qty <= 0) continue
          const product = order.product === null ? undefined : products.get(order.product)
          if (product !== undefined) expected.set(key, { qty: order.qty, product: product.name, price: product.price })
          else if (type === 'left') expected.set(key, { qty: order.qty, product: null, price: null })
        }
        const actual = driver.readTable('order-details')
        assert.deepEqual(new Map([...actual].sort()), new Map([...expected].sort()), `seed ${seed}, step ${step}, partitions ${partitions}`)
      }
      assert.deepEqual(driver.readDeadLetters(), [], `seed ${seed}`)
      for (const record of driver.allOutput('order-details')) assert.equal(record.task, partitionForString(record.key!, partitions), `seed ${seed}: one owner per left key`)
    }
  })
}
