// The FK join (KIP-213): the shared semantics suite on the test driver, plus driver-only cases.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'
import { groupPrefix, groupedKey } from '../../src/state/store.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import { unpackRecords } from '../../src/topology/record-pack.ts'
import { fkJoinCases, fkJoinTopology, type FkJoinRunner, type OrderDetail } from '../support/fk-join-cases.ts'
import { seededRandom } from '../support/seeded-random.ts'

const driverRunner: FkJoinRunner = {
  async start(type, partitions) {
    const topics = { applicationId: `fk-${type}`, orders: 'orders', products: 'products', output: 'order-details' }
    const driver = new TopologyTestDriver(fkJoinTopology(type, topics), { partitions })
    return {
      topics,
      send: (topic, key, value) => driver.pipe(topic, key, value),
      settle: async () => {},
      outputsFor: async (key) =>
        driver
          .allOutput(topics.output)
          .filter((r) => r.key === key)
          .map((r) => r.value as OrderDetail | null),
      outputTable: async () => driver.readTable(topics.output) as Map<string, OrderDetail>,
      close: async () => {
        const deadLetters = driver.readDeadLetters()
        await driver.close()
        if (deadLetters.length > 0)
          throw new Error(`unexpected dead letters: ${JSON.stringify(deadLetters.map((r) => r.headers))}`)
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
  // Responses travel in record packs (src/topology/record-pack.ts): count the answers inside them.
  const responses = driver
    .allOutput('fk-join-products-response-repartition')
    .flatMap((r) =>
      unpackRecords({
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: 0n,
        headers: new Map(),
        key: r.rawKey,
        value: r.rawValue,
      }),
    )
    .filter((r) => r.key?.toString('utf8') === 'o1')
  assert.equal(responses.length, 2, 'both subscriptions were answered')
  assert.deepEqual(
    driver.readOutput('order-details').map((r) => r.value),
    [{ qty: 2, product: 'widget', price: 5 }],
  )
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
  // One entry per (right key, left key): o1 is subscribed to p2 only.
  const index = driver.readStore('join-products-subscriptions')
  assert.deepEqual([...index.keys()], [groupedKey('p2', 'o1')])
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
  assert.deepEqual(
    rehomed.map((r) => [r.key, r.partition]),
    [['p1', partitionForString('p1', 3)]],
  )
  await driver.pipe('products', 'p1', { name: 'widget', price: 6 }, { partition: wrong })
  assert.deepEqual(driver.readTable('order-details').get('o1'), { qty: 1, product: 'widget', price: 6 })
  await driver.pipe('products', 'p1', null, { partition: wrong })
  assert.deepEqual(driver.readTable('order-details').get('o1'), { qty: 1, product: null, price: null })
  assert.equal(driver.readStore('join-products-right').size, 0, 'the re-homed row is deleted too')
  await driver.pipe('orders', 'o2', { product: 'p1', qty: 2 })
  assert.deepEqual(driver.readTable('order-details').get('o2'), { qty: 2, product: null, price: null })
  assert.deepEqual(driver.readDeadLetters(), [])
})

/** left ⋈ right on left.fk, whose joiner throws for a right row with ok = false. */
function throwingJoinerTopology() {
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
  return builder.build()
}

test('a throwing joiner dead-letters the record and the line keeps moving', async () => {
  const driver = new TopologyTestDriver(throwingJoinerTopology(), { partitions: 2 })
  await driver.pipe('right', 'a', { ok: false })
  await driver.pipe('right', 'b', { ok: true })
  await driver.pipe('left', 'x', { fk: 'a' })
  await driver.pipe('left', 'y', { fk: 'b' })
  const [dead, ...more] = driver.readDeadLetters()
  assert.equal(more.length, 0)
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.node], 'j')
  // The source change that led here (left x), and the internal record that failed (its response).
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.topic], 'left')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.sourceKey], 'x')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.inputTopic], 'boom-j-response-repartition')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.message], 'not ok')
  assert.deepEqual([...driver.readTable('out').keys()], ['y'])
})

test('an answer that fails inside a response pack is dead-lettered alone, with its own key and value; the pack’s other answers join', async () => {
  const driver = new TopologyTestDriver(throwingJoinerTopology(), { partitions: 1 })
  await driver.pipeBatch([
    { topic: 'right', key: 'a', value: { ok: false } },
    { topic: 'right', key: 'b', value: { ok: true } },
  ])
  await driver.pipeBatch([
    { topic: 'left', key: 'x', value: { fk: 'a' } },
    { topic: 'left', key: 'y', value: { fk: 'b' } },
    { topic: 'left', key: 'z', value: { fk: 'b' } },
  ])
  const packs = driver.allOutput('boom-j-response-repartition')
  assert.equal(packs.length, 1, 'the three answers travelled in one pack')
  const [dead, ...more] = driver.readDeadLetters()
  assert.equal(more.length, 0)
  assert.equal(dead.key, 'x')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.topic], 'left')
  assert.equal(
    dead.headers[DEAD_LETTER_HEADERS.offset],
    '0',
    "x's own offset on the left topic, not a neighbour's in the pack",
  )
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.inputTopic], 'boom-j-response-repartition')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.inputOffset], String(packs[0].offset))
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.message], 'not ok')
  assert.deepEqual([...driver.readTable('out').keys()].sort(), ['y', 'z'])
})

test('an unchanged left row re-sent joins again but rewrites neither its table nor the reverse index', async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('left', topics), { partitions: 3 })
  await driver.pipe('products', 'p1', { name: 'widget', price: 5 })
  await driver.pipe('orders', 'o1', { product: 'p1', qty: 1 })
  const changelogs = (): number[] =>
    ['orders', 'join-products-subscriptions'].map((store) => driver.allOutput(`fk-${store}-changelog`).length)
  const before = changelogs()
  assert.deepEqual(before, [1, 1])
  await driver.pipe('orders', 'o1', { product: 'p1', qty: 1 })
  assert.deepEqual(changelogs(), before)
  assert.deepEqual(
    driver.allOutput('order-details').map((r) => r.value),
    [
      { qty: 1, product: 'widget', price: 5 },
      { qty: 1, product: 'widget', price: 5 },
    ],
  )
})

for (const type of ['inner', 'left'] as const) {
  test(`${type}: seeded random changes on both sides keep the output equal to the join recomputed from scratch`, async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const random = seededRandom(seed)
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
      const partitions = 1 + Math.floor(random() * 4)
      const driver = new TopologyTestDriver(fkJoinTopology(type, topics), { partitions })
      const orderKeys = Array.from({ length: 12 }, (_, i) => `o${i}`)
      const productKeys = Array.from({ length: 5 }, (_, i) => `p${i}`)
      // Some products live on a partition their key does not hash to (as with Debezium keys): stable per key.
      const productPartition = new Map(
        productKeys.map((k) => [
          k,
          random() < 0.4 ? Math.floor(random() * partitions) : partitionForString(k, partitions),
        ]),
      )
      const orders = new Map<string, { product: string | null; qty: number }>()
      const products = new Map<string, { name: string; price: number }>()
      for (let step = 0; step < 60; step++) {
        const batch = Array.from({ length: 1 + Math.floor(random() * 4) }, () => {
          if (random() < 0.6) {
            const key = pick(orderKeys)
            const value =
              random() < 0.2
                ? null
                : { product: random() < 0.1 ? null : pick([...productKeys, 'nowhere']), qty: Math.floor(random() * 4) }
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
        assert.deepEqual(
          new Map([...actual].sort()),
          new Map([...expected].sort()),
          `seed ${seed}, step ${step}, partitions ${partitions}`,
        )
      }
      assert.deepEqual(driver.readDeadLetters(), [], `seed ${seed}`)
      for (const record of driver.allOutput('order-details'))
        assert.equal(record.task, partitionForString(record.key!, partitions), `seed ${seed}: one owner per left key`)
    }
  })
}

interface Line {
  readonly product: string | null
  readonly qty: number
}
interface Item {
  readonly name: string
  readonly category: string | null
}
interface Category {
  readonly label: string
}

/** orders ⋈ products (left) ⋈ categories (join type under test), by the product's category. */
function chainedTopology(type: 'inner' | 'left') {
  const b = new TopologyBuilder({ applicationId: 'chain' })
  const products = b.table<Item>('products', { name: 'products' })
  const categories = b.table<Category>('categories', { name: 'categories' })
  const withProduct = b.table<Line>('orders', { name: 'orders' }).join(products, {
    name: 'join-products',
    type: 'left',
    foreignKey: (order) => order.product,
    joiner: (order, product) => ({
      qty: order.qty,
      product: product?.name ?? null,
      category: product?.category ?? null,
    }),
  })
  const joined =
    type === 'inner'
      ? withProduct.join(categories, {
          name: 'join-categories',
          foreignKey: (row) => row.category,
          joiner: (row, category) => ({ ...row, label: category.label }),
        })
      : withProduct.join(categories, {
          name: 'join-categories',
          type: 'left',
          foreignKey: (row) => row.category,
          joiner: (row, category) => ({ ...row, label: category?.label ?? null }),
        })
  joined.to('lines')
  return b.build()
}

test('a join result read by another join is materialized under the join name, with its changelog', () => {
  const topology = chainedTopology('inner')
  const processor = topology.compile({ partitions: 2 })
  assert.deepEqual(processor.storeNames, [
    'products',
    'categories',
    'orders',
    'join-products',
    'join-products-subscriptions',
    'join-products-right',
    'join-categories-subscriptions',
    'join-categories-right',
  ])
  assert.ok(processor.topics.some((t) => t.name === 'chain-join-products-changelog' && t.store === 'join-products'))
  assert.match(topology.describe(), /Processor: join-products \(stores: \[orders, join-products\]\) \[fk-join: left\]/)
})

for (const type of ['inner', 'left'] as const) {
  test(`${type}: chained joins re-trigger from every table, across store losses, checked against the recomputed join (seeded)`, async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const random = seededRandom(1000 + seed)
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
      const partitions = 1 + Math.floor(random() * 4)
      const driver = new TopologyTestDriver(chainedTopology(type), { partitions })
      const orders = new Map<string, Line>()
      const products = new Map<string, Item>()
      const categories = new Map<string, Category>()
      const categoryKeys = ['c0', 'c1', 'c2']
      for (let step = 0; step < 60; step++) {
        const batch = Array.from({ length: 1 + Math.floor(random() * 4) }, () => {
          const roll = random()
          if (roll < 0.45) {
            const key = pick(['o0', 'o1', 'o2', 'o3', 'o4', 'o5', 'o6', 'o7'])
            const value =
              random() < 0.15
                ? null
                : { product: random() < 0.1 ? null : pick(['p0', 'p1', 'p2', 'p3']), qty: 1 + Math.floor(random() * 3) }
            if (value === null) orders.delete(key)
            else orders.set(key, value)
            return { topic: 'orders', key, value }
          }
          if (roll < 0.75) {
            const key = pick(['p0', 'p1', 'p2', 'p3'])
            const value =
              random() < 0.2 ? null : { name: `${key}@${step}`, category: random() < 0.1 ? null : pick(categoryKeys) }
            if (value === null) products.delete(key)
            else products.set(key, value)
            return { topic: 'products', key, value }
          }
          const key = pick(categoryKeys)
          const value = random() < 0.25 ? null : { label: `${key}@${step}` }
          if (value === null) categories.delete(key)
          else categories.set(key, value)
          return { topic: 'categories', key, value }
        })
        await driver.pipeBatch(batch)
        if (random() < 0.1) await driver.restoreStoresFromChangelogs()
        const expected = new Map<string, unknown>()
        for (const [key, order] of orders) {
          const product = order.product === null ? undefined : products.get(order.product)
          const row = { qty: order.qty, product: product?.name ?? null, category: product?.category ?? null }
          const category = row.category === null ? undefined : categories.get(row.category)
          if (category !== undefined) expected.set(key, { ...row, label: category.label })
          else if (type === 'left') expected.set(key, { ...row, label: null })
        }
        const actual = driver.readTable('lines')
        assert.deepEqual(
          new Map([...actual].sort()),
          new Map([...expected].sort()),
          `seed ${seed}, step ${step}, partitions ${partitions}`,
        )
      }
      assert.deepEqual(driver.readDeadLetters(), [], `seed ${seed}`)
      for (const record of driver.allOutput('lines'))
        assert.equal(record.task, partitionForString(record.key!, partitions))
    }
  })
}

test('a join result can be the right table of another join: right-side re-triggers flow through both (seeded)', async () => {
  const b = new TopologyBuilder({ applicationId: 'lookup' })
  const categories = b.table<Category>('categories', { name: 'categories' })
  const enriched = b.table<Item>('products', { name: 'products' }).join(categories, {
    name: 'products-with-category',
    type: 'left',
    foreignKey: (product) => product.category,
    joiner: (product, category) => ({ name: product.name, label: category?.label ?? null }),
  })
  b.table<Line>('orders', { name: 'orders' })
    .join(enriched, {
      name: 'join-enriched',
      foreignKey: (order) => order.product,
      joiner: (order, product) => ({ qty: order.qty, ...product }),
    })
    .to('lines')
  for (let seed = 1; seed <= 8; seed++) {
    const random = seededRandom(2000 + seed)
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
    const partitions = 1 + Math.floor(random() * 4)
    const driver = new TopologyTestDriver(b.build(), { partitions })
    const orders = new Map<string, Line>()
    const products = new Map<string, Item>()
    const cats = new Map<string, Category>()
    for (let step = 0; step < 50; step++) {
      const roll = random()
      if (roll < 0.4) {
        const key = pick(['o0', 'o1', 'o2', 'o3', 'o4', 'o5'])
        const value = random() < 0.15 ? null : { product: pick(['p0', 'p1', 'p2']), qty: 1 + Math.floor(random() * 3) }
        if (value === null) orders.delete(key)
        else orders.set(key, value)
        await driver.pipe('orders', key, value)
      } else if (roll < 0.7) {
        const key = pick(['p0', 'p1', 'p2'])
        const value = random() < 0.2 ? null : { name: `${key}@${step}`, category: pick(['c0', 'c1']) }
        if (value === null) products.delete(key)
        else products.set(key, value)
        await driver.pipe('products', key, value)
      } else {
        const key = pick(['c0', 'c1'])
        const value = random() < 0.25 ? null : { label: `${key}@${step}` }
        if (value === null) cats.delete(key)
        else cats.set(key, value)
        await driver.pipe('categories', key, value)
      }
      const expected = new Map<string, unknown>()
      for (const [key, order] of orders) {
        const product = order.product === null ? undefined : products.get(order.product)
        if (product === undefined) continue
        const category = product.category === null ? undefined : cats.get(product.category)
        expected.set(key, { qty: order.qty, name: product.name, label: category?.label ?? null })
      }
      assert.deepEqual(
        new Map([...driver.readTable('lines')].sort()),
        new Map([...expected].sort()),
        `seed ${seed}, step ${step}`,
      )
    }
    assert.deepEqual(driver.readDeadLetters(), [])
  }
})

test('subscriptions in the earlier layout (one list per right key) migrate to entries the first time the key is touched', async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('left', topics), { partitions: 3 })
  await driver.pipe('products', 'p1', { name: 'widget', price: 5 })
  await driver.pipe('orders', 'o1', { product: 'p1', qty: 1 })
  await driver.pipe('orders', 'o2', { product: 'p1', qty: 2 })
  // Rewrite the committed entries as the earlier layout: JSON [[left key, left partition, left hash], ...] under p1.
  const store = driver.store('join-products-subscriptions')!
  const partition = partitionForString('p1', 3)
  const entries = [...store.entries(partition)]
  assert.deepEqual(
    entries.map(([key]) => key),
    [groupedKey('p1', 'o1'), groupedKey('p1', 'o2')],
  )
  const legacy = entries.map(([key, value]) => [
    key.slice(groupPrefix('p1').length),
    value.readUInt32BE(1),
    value.toString('latin1', 5),
  ])
  for (const [key] of entries) store.delete(partition, key)
  store.put(partition, 'p1', Buffer.from(JSON.stringify(legacy)))
  store.drainChangelog()
  await store.flush(new Map())

  await driver.pipe('products', 'p1', { name: 'widget', price: 6 })
  assert.deepEqual(Object.fromEntries(driver.readTable('order-details')), {
    o1: { qty: 1, product: 'widget', price: 6 },
    o2: { qty: 2, product: 'widget', price: 6 },
  })
  assert.deepEqual(
    [...driver.readStore('join-products-subscriptions').keys()],
    [groupedKey('p1', 'o1'), groupedKey('p1', 'o2')],
    'the list was replaced by one entry per left row',
  )
  const changelog = driver.allOutput('fk-join-products-subscriptions-changelog').slice(-3)
  assert.deepEqual(
    changelog.map((r) => [r.key, r.value === null]),
    [
      [groupedKey('p1', 'o1'), false],
      [groupedKey('p1', 'o2'), false],
      ['p1', true],
    ],
    'the migration is in the changelog: entries written, the list tombstoned',
  )
  assert.deepEqual(driver.readDeadLetters(), [])
})

test('one right key referenced by 100,000 left rows: the join completes, a right change re-triggers all, and no record or store value grows with the rows', async () => {
  const rows = 100_000
  const driver = new TopologyTestDriver(fkJoinTopology('inner', topics), { partitions: 4 })
  await driver.pipe('products', 'hot', { name: 'widget', price: 1 })
  const batch = 5_000
  for (let from = 0; from < rows; from += batch) {
    await driver.pipeBatch(
      Array.from({ length: batch }, (_, i) => ({
        topic: 'orders',
        key: `o${from + i}`,
        value: { product: 'hot', qty: 1 },
      })),
    )
  }
  const joined = driver.readTable('order-details')
  assert.equal(joined.size, rows)
  assert.deepEqual(joined.get('o99999'), { qty: 1, product: 'widget', price: 1 })

  await driver.pipe('products', 'hot', { name: 'widget', price: 2 })
  const after = driver.readTable('order-details')
  let repriced = 0
  for (const value of after.values()) if ((value as OrderDetail).price === 2) repriced++
  assert.equal(repriced, rows, 'the right change reached every left row')

  // Fixed bounds: a subscription entry, a pack of 16 responses or subscriptions (one right row each).
  let largestValue = 0
  for (const name of ['join-products-subscriptions', 'orders', 'products']) {
    const store = driver.store(name)!
    for (const partition of store.partitions())
      for (const value of store.entries(partition).values()) largestValue = Math.max(largestValue, value.length)
  }
  assert.ok(largestValue < 256, `largest store value ${largestValue} bytes`)
  let largestRecord = 0
  for (const topic of [
    'fk-join-products-subscriptions-changelog',
    'fk-join-products-subscription-repartition',
    'fk-join-products-response-repartition',
  ]) {
    for (const r of driver.allOutput(topic))
      largestRecord = Math.max(largestRecord, (r.rawKey?.length ?? 0) + (r.rawValue?.length ?? 0))
  }
  assert.ok(largestRecord < 4096, `largest internal record ${largestRecord} bytes`)
  assert.equal(driver.store('join-products-subscriptions')!.partitions().length, 1)
  assert.equal(driver.readStore('join-products-subscriptions').size, rows, 'one entry per left row')
  assert.deepEqual(driver.readDeadLetters(), [])
})
