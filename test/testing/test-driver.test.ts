import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import { fkJoinTopology } from '../support/fk-join-cases.ts'

const topics = { applicationId: 'shop', orders: 'orders', products: 'products', output: 'order-details' }

test('the TSDoc example: an order picks up its product, and follows its changes', async () => {
  const builder = new TopologyBuilder({ applicationId: 'orders' })
  const products = builder.table<{ price: number }>('products', { name: 'products' })
  builder
    .table<{ product: string; qty: number }>('orders', { name: 'orders' })
    .join(products, {
      name: 'join-products',
      foreignKey: (o) => o.product,
      joiner: (o, p) => ({ ...o, price: p.price }),
    })
    .to('order-details')

  const driver = new TopologyTestDriver(builder.build(), { partitions: 3 })
  await driver.pipe('products', 'p1', { price: 5 })
  await driver.pipe('orders', 'o1', { product: 'p1', qty: 2 })
  await driver.pipe('products', 'p1', { price: 6 })
  assert.deepEqual(driver.readTable('order-details').get('o1'), { product: 'p1', qty: 2, price: 6 })
  assert.deepEqual(driver.readDeadLetters(), [])
})

test("inputs are placed with Kafka's default partitioner; every output for a left key comes from that key's task", async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('left', topics), { partitions: 5 })
  const keys = Array.from({ length: 30 }, (_, i) => `o${i}`)
  await driver.pipe('products', 'p1', { name: 'widget', price: 5 })
  for (const key of keys) await driver.pipe('orders', key, { product: 'p1', qty: 1 })
  await driver.pipe('products', 'p1', { name: 'widget', price: 6 })
  await driver.pipe('products', 'p1', null)
  const outputs = driver.allOutput('order-details')
  assert.equal(outputs.length, keys.length * 3)
  for (const record of outputs) assert.equal(record.task, partitionForString(record.key!, 5), record.key!)
  for (const record of driver.allOutput('shop-join-products-subscription-repartition'))
    assert.equal(record.partition, partitionForString('p1', 5))
})

test("pipeBatch runs one batch per task: the batch's keys are prefetched once and later records see earlier writes", async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('inner', topics), { partitions: 2 })
  await driver.pipeBatch([
    { topic: 'products', key: 'p1', value: { name: 'widget', price: 5 } },
    { topic: 'products', key: 'p1', value: { name: 'widget', price: 6 } },
    { topic: 'orders', key: 'o1', value: { product: 'p1', qty: 1 } },
    { topic: 'orders', key: 'o2', value: { product: 'p1', qty: 2 } },
    { topic: 'orders', key: 'o1', value: null },
  ])
  assert.deepEqual([...driver.readTable('order-details')], [['o2', { qty: 2, product: 'widget', price: 6 }]])
  assert.deepEqual([...driver.readStore('products')], [['p1', { name: 'widget', price: 6 }]])
  assert.deepEqual([...driver.readStore('orders')], [['o2', { product: 'p1', qty: 2 }]])
})

test('outputs: readOutput consumes, allOutput keeps everything, changelogs are recorded per store', async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('left', topics), { partitions: 2 })
  await driver.pipe('orders', 'o1', { product: null, qty: 1 })
  assert.equal(driver.readOutput('order-details').length, 1)
  assert.equal(driver.readOutput('order-details').length, 0)
  await driver.pipe('orders', 'o1', { product: null, qty: 2 })
  assert.deepEqual(
    driver.readOutput('order-details').map((r) => r.value),
    [{ qty: 2, product: null, price: null }],
  )
  assert.equal(driver.allOutput('order-details').length, 2)
  const changelog = driver.allOutput('shop-orders-changelog')
  assert.deepEqual(
    changelog.map((r) => [r.key, r.value, r.offset]),
    [
      ['o1', { product: null, qty: 1 }, 0n],
      ['o1', { product: null, qty: 2 }, 1n],
    ],
  )
  assert.equal(
    await driver.store('orders')!.checkpoint(partitionForString('o1', 2)),
    2n,
    'the checkpoint is the next changelog offset',
  )
})

test('undecodable input is dead-lettered with its source position and the line keeps moving', async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('left', topics), { partitions: 2 })
  await driver.pipe('orders', null, { product: null, qty: 1 })
  await driver.pipe('orders', 'o1', '{not json')
  await driver.pipe('orders', 'o2', { product: null, qty: 1 })
  const dead = driver.readDeadLetters()
  assert.deepEqual(
    dead.map((r) => [
      r.headers[DEAD_LETTER_HEADERS.code],
      r.headers[DEAD_LETTER_HEADERS.node],
      r.headers[DEAD_LETTER_HEADERS.topic],
      r.headers[DEAD_LETTER_HEADERS.offset],
      r.headers[DEAD_LETTER_HEADERS.application],
    ]),
    [
      ['RS_DECODE_FAILED', 'orders', 'orders', '0', 'shop'],
      ['RS_DECODE_FAILED', 'orders', 'orders', '0', 'shop'],
    ],
  )
  assert.equal(dead[0].headers[DEAD_LETTER_HEADERS.message], 'a table record needs a key')
  assert.equal(dead[0].headers[DEAD_LETTER_HEADERS.timestamp], '0')
  assert.equal(dead[0].headers[DEAD_LETTER_HEADERS.failedAt], '0')
  assert.equal(dead[1].headers[DEAD_LETTER_HEADERS.partition], String(partitionForString('o1', 2)))
  assert.equal(dead[1].value, '{not json', 'the record is kept byte for byte')
  assert.deepEqual([...driver.readTable('order-details').keys()], ['o2'])
})

test('piping to a topic the topology does not read, or to an internal topic, or a bad partition fails loudly', async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('left', topics), { partitions: 2 })
  await assert.rejects(driver.pipe('nope', 'k', 1), /does not read topic 'nope'/)
  await assert.rejects(driver.pipe('shop-join-products-response-repartition', 'k', 1), /does not read topic/)
  await assert.rejects(
    driver.pipe('orders', 'k', { product: null, qty: 1 }, { partition: 2 }),
    /partition 2 is outside 0..1/,
  )
  await driver.pipe('orders', 'k', { product: null, qty: 1 })
  assert.equal(driver.readTable('order-details').size, 1, 'the driver keeps working after a rejected pipe')
  await driver.close()
})

test('stores rebuilt from their changelogs (Redis lost everything) carry on exactly', async () => {
  const driver = new TopologyTestDriver(fkJoinTopology('inner', topics), { partitions: 3 })
  await driver.pipe('products', 'p1', { name: 'widget', price: 5 })
  await driver.pipe('orders', 'o1', { product: 'p1', qty: 1 })
  await driver.pipe('orders', 'o2', { product: 'p1', qty: 2 })
  await driver.pipe('orders', 'o2', null)
  const before = new Map(['products', 'orders', 'join-products-subscriptions'].map((s) => [s, driver.readStore(s)]))
  await driver.restoreStoresFromChangelogs()
  for (const [name, contents] of before) assert.deepEqual(driver.readStore(name), contents, name)
  await driver.pipe('products', 'p1', { name: 'widget', price: 6 })
  assert.deepEqual([...driver.readTable('order-details')], [['o1', { qty: 1, product: 'widget', price: 6 }]])
})

test('the driver is strict: reading or piping a topic the topology does not have fails, listing the topics it has', async () => {
  const builder = new TopologyBuilder({ applicationId: 'strict' })
  builder.table<{ n: number }>('rows', { name: 'rows' }).to('copies')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 1 })
  await driver.pipe('rows', 'a', { n: 1 })
  assert.equal(driver.readOutput('copies').length, 1)
  for (const read of [
    () => driver.readOutput('copy'),
    () => driver.allOutput('copy'),
    () => driver.readTable('copy'),
  ]) {
    assert.throws(read, (error: Error) => {
      assert.match(error.message, /has no topic 'copy'/)
      for (const topic of ['rows', 'copies', 'strict-rows-changelog', 'strict-dead-letter'])
        assert.ok(error.message.includes(topic), `lists ${topic}: ${error.message}`)
      return true
    })
  }
  await assert.rejects(driver.pipe('row', 'a', { n: 1 }), /does not read topic 'row'; it reads: rows/)
  // A topic the topology has but nothing was produced to yet reads as empty.
  assert.deepEqual(driver.readDeadLetters(), [])
  await driver.close()
})
