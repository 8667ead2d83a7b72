// `peek`, the operator docs/architecture.md's checklist adds: it sees every change, passes it on
// unchanged, a throw in it dead-letters the record (its table write undone), and a join reads through it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'

test('peek sees every change and passes it on unchanged; a throw in it dead-letters the record', async () => {
  const seen: [string, unknown][] = []
  const builder = new TopologyBuilder({ applicationId: 'peek' })
  builder
    .table<{ n: number }>('rows', { name: 'rows' })
    .peek(
      (value, key) => {
        if (value?.n === 13) throw new Error('unlucky')
        seen.push([key, value])
      },
      { name: 'watch' },
    )
    .to('copies')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 1 })
  await driver.pipe('rows', 'a', { n: 1 })
  await driver.pipe('rows', 'a', null)
  await driver.pipe('rows', 'b', { n: 13 })
  assert.deepEqual(seen, [
    ['a', { n: 1 }],
    ['a', null],
  ])
  assert.deepEqual(
    driver.readOutput('copies').map((r) => [r.key, r.value]),
    [
      ['a', { n: 1 }],
      ['a', null],
    ],
  )
  const [dead] = driver.readDeadLetters()
  assert.equal(dead.key, 'b')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.node], 'watch')
  assert.equal(driver.readStore('rows').has('b'), false, "the failed record's table write is undone")
  assert.match(driver.topology.describe(), /Processor: watch/)
  await driver.close()
})

test('a join reads its right table through a peek', async () => {
  const builder = new TopologyBuilder({ applicationId: 'peek-join' })
  const products = builder.table<{ price: number }>('products', { name: 'products' }).peek(() => {})
  builder
    .table<{ product: string }>('orders', { name: 'orders' })
    .join(products, { name: 'join', foreignKey: (o) => o.product, joiner: (o, p) => ({ ...o, price: p.price }) })
    .to('out')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 2 })
  await driver.pipe('products', 'p1', { price: 5 })
  await driver.pipe('orders', 'o1', { product: 'p1' })
  assert.deepEqual(driver.readTable('out').get('o1'), { product: 'p1', price: 5 })
  await driver.close()
})
