// `groupBy(…).collect(…)`: a parent's children as an ordered, bounded list (top-N by a field, `total`
// counting all, `truncated` when the overflow rule left some out), one store entry per child keyed by
// its place in the order, so a change to one child of a 2,000-child parent costs at most three store
// writes (its old entry, its new one, the document) and no scan unless a listed child leaves;
// equal on seeded change streams to the list computed from the final rows, also after a restore;
// joinable as a product catalog's reviews.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { orderPart, type Collected } from '../../src/operators/aggregate/collect.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { seededRandom } from '../support/seeded-random.ts'

interface Review {
  readonly product: string | null
  readonly stars: number
  readonly text: string
}

const LIMIT = 3

function collectTopology(app: string) {
  const builder = new TopologyBuilder({ applicationId: app })
  builder
    .table<Review>('reviews', { name: 'reviews' })
    .groupBy(
      (r) => r.product,
      (r) => ({ stars: r.stars, text: r.text }),
    )
    .collect({ name: 'top-reviews', orderBy: (r) => r.stars, descending: true, limit: LIMIT })
    .to('documents')
  return builder.build()
}

/** The collected documents computed directly from the final rows. */
function direct(rows: ReadonlyMap<string, Review>): Map<string, unknown> {
  const byProduct = new Map<string, { key: string; value: { stars: number; text: string } }[]>()
  for (const [key, r] of rows) {
    if (r.product === null) continue
    byProduct.set(r.product, [...(byProduct.get(r.product) ?? []), { key, value: { stars: r.stars, text: r.text } }])
  }
  const out = new Map<string, unknown>()
  for (const [product, items] of byProduct) {
    items.sort((a, b) => b.value.stars - a.value.stars || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    out.set(product, { items: items.slice(0, LIMIT), total: items.length, truncated: items.length > LIMIT })
  }
  return out
}

const sorted = <V>(m: ReadonlyMap<string, V>) => new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

test('collect keeps the top-N children in order; the rest enter when one before them leaves', async () => {
  const driver = new TopologyTestDriver(collectTopology('collect-basic'), { partitions: 3 })
  for (const [key, stars] of [
    ['r1', 3],
    ['r2', 5],
    ['r3', 1],
    ['r4', 4],
  ] as const)
    await driver.pipe('reviews', key, { product: 'p1', stars, text: `${key} text` })
  assert.deepEqual(driver.readTable('documents').get('p1'), {
    items: [
      { key: 'r2', value: { stars: 5, text: 'r2 text' } },
      { key: 'r4', value: { stars: 4, text: 'r4 text' } },
      { key: 'r1', value: { stars: 3, text: 'r1 text' } },
    ],
    total: 4,
    truncated: true,
  })
  // r2 moves to p2: it leaves p1 (r3 enters the list) and is p2's only child.
  await driver.pipe('reviews', 'r2', { product: 'p2', stars: 5, text: 'r2 text' })
  const p1 = driver.readTable('documents').get('p1') as { items: { key: string }[]; total: number }
  assert.deepEqual(
    p1.items.map((i) => i.key),
    ['r4', 'r1', 'r3'],
  )
  assert.equal(p1.total, 3)
  assert.deepEqual(driver.readTable('documents').get('p2'), {
    items: [{ key: 'r2', value: { stars: 5, text: 'r2 text' } }],
    total: 1,
    truncated: false,
  })
  // p2's only child deleted: p2's document is deleted.
  await driver.pipe('reviews', 'r2', null)
  assert.equal(driver.readTable('documents').has('p2'), false)
  await driver.close()
})

for (const seed of [11, 12, 13]) {
  test(`collect on seeded change streams (seed ${seed}) equals the lists computed from the final rows, also after a restore`, async () => {
    const random = seededRandom(seed)
    const driver = new TopologyTestDriver(collectTopology(`collect-diff-${seed}`), { partitions: 4 })
    const rows = new Map<string, Review>()
    for (let i = 0; i < 40; i++) {
      const batch = []
      for (let j = 0; j < 25; j++) {
        const key = `r${Math.floor(random() * 120)}`
        if (random() < 0.15) {
          rows.delete(key)
          batch.push({ topic: 'reviews', key, value: null })
        } else {
          const product = random() < 0.05 ? null : random() < 0.4 ? 'hot' : `p${Math.floor(random() * 8)}`
          const review = { product, stars: 1 + Math.floor(random() * 5), text: `t${Math.floor(random() * 1000)}` }
          rows.set(key, review)
          batch.push({ topic: 'reviews', key, value: review })
        }
      }
      await driver.pipeBatch(batch)
      if (i === 20) await driver.restoreStoresFromChangelogs()
    }
    assert.deepEqual(sorted(driver.readTable('documents')), sorted(direct(rows)))
    assert.equal(driver.readDeadLetters().length, 0)
    await driver.close()
  })
}

test('a change to one child of a parent with 2,000 children writes its entries and the document, and scans only to refill the list', async () => {
  const driver = new TopologyTestDriver(collectTopology('collect-hot'), { partitions: 3 })
  const children = Array.from({ length: 2_000 }, (_, i) => ({
    topic: 'reviews',
    key: `r${String(i).padStart(5, '0')}`,
    value: { product: 'hot', stars: 1 + (i % 5), text: `review ${i}` },
  }))
  for (let i = 0; i < children.length; i += 500) await driver.pipeBatch(children.slice(i, i + 500))
  const store = driver.store('top-reviews')!
  let writes = 0
  const put = store.put.bind(store)
  const del = store.delete.bind(store)
  let scans = 0
  const scan = store.scan.bind(store)
  store.put = (partition, key, value) => (writes++, put(partition, key, value))
  store.delete = (partition, key) => (writes++, del(partition, key))
  store.scan = (partition, prefix) => (scans++, scan(partition, prefix))
  const changelog = () => driver.allOutput('collect-hot-top-reviews-changelog').length
  const before = changelog()
  // r00001 (2 stars) becomes 5 stars: it enters the top 3 (its entry moves: old key deleted, new key written).
  await driver.pipe('reviews', 'r00001', { product: 'hot', stars: 5, text: 'rewritten' })
  assert.equal(writes, 3, 'the old entry, the new entry and the document')
  assert.equal(changelog() - before, 3)
  assert.equal(scans, 0, 'a child entering the list needs no scan')
  writes = 0
  // A child outside the top 3 changes: its entry is written; the document is unchanged (no write, no output).
  const outputs = driver.allOutput('documents').length
  await driver.pipe('reviews', 'r00020', { product: 'hot', stars: 1, text: 'still low' })
  assert.equal(writes, 1)
  assert.equal(driver.allOutput('documents').length, outputs)
  const doc = driver.readTable('documents').get('hot') as { items: unknown[]; total: number; truncated: boolean }
  assert.equal(doc.items.length, LIMIT)
  assert.equal(doc.total, 2_000)
  assert.deepEqual(
    doc.items.map((i) => (i as { key: string }).key),
    ['r00001', 'r00004', 'r00009'],
  )
  assert.equal(doc.truncated, true)
  // A listed child leaves: the list is refilled from one ordered scan (the next 5-star child enters).
  await driver.pipe('reviews', 'r00004', null)
  assert.equal(scans, 1)
  assert.deepEqual(
    (driver.readTable('documents').get('hot') as { items: { key: string }[] }).items.map((i) => i.key),
    ['r00001', 'r00009', 'r00014'],
  )
  await driver.close()
})

test('orderPart: key order is the order of numbers (negatives, fractions, -0) and strings (any Unicode), reversed when descending', () => {
  const numbers = [-Infinity, -1e300, -2.5, -1, -Number.MIN_VALUE, 0, Number.MIN_VALUE, 0.5, 1, 2, 10, 1e300, Infinity]
  const strings = ['', 'a', 'ab', 'b', 'z\u0000', 'é', '\uffff', '😀', 'ꙮ']
  const values: (number | string)[] = [
    ...numbers,
    ...strings.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
  ]
  const ascending = values.map((v) => orderPart(v, false))
  const descending = values.map((v) => orderPart(v, true))
  assert.deepEqual([...ascending].sort(), ascending, 'ascending: numbers first, then strings by code point')
  assert.deepEqual([...descending].sort(), [...descending].reverse(), 'descending: the exact reverse')
  assert.equal(orderPart(-0, false), orderPart(0, false))
  for (const part of [...ascending, ...descending])
    assert.match(part, /^[0-9a-f]+[!~]$/, 'ASCII only: Redis sorts it the same')
})

test('a catalog: products joined with their collected reviews (the collect result is a table)', async () => {
  const builder = new TopologyBuilder({ applicationId: 'collect-catalog' })
  const reviews = builder
    .table<Review>('reviews', { name: 'reviews' })
    .groupBy(
      (r) => r.product,
      (r) => ({ stars: r.stars, text: r.text }),
    )
    .collect({ name: 'product-reviews', orderBy: (r) => r.stars, descending: true, limit: 10 })
  builder
    .table<{ id: string; title: string }>('products', { name: 'products' })
    .join(reviews, {
      name: 'with-reviews',
      type: 'left',
      foreignKey: (p) => p.id,
      joiner: (p, r) => ({ title: p.title, reviews: (r?.items ?? []).map((i) => i.value.text) }),
    })
    .to('catalog')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 3 })
  await driver.pipe('products', 'p1', { id: 'p1', title: 'Kettle' })
  await driver.pipe('reviews', 'r1', { product: 'p1', stars: 4, text: 'boils fast' })
  await driver.pipe('reviews', 'r2', { product: 'p1', stars: 5, text: 'quiet' })
  assert.deepEqual(driver.readTable('catalog').get('p1'), { title: 'Kettle', reviews: ['quiet', 'boils fast'] })
  await driver.pipe('reviews', 'r2', null)
  assert.deepEqual(driver.readTable('catalog').get('p1'), { title: 'Kettle', reviews: ['boils fast'] })
  await driver.close()
})

test('collect validates its limit', () => {
  const builder = new TopologyBuilder({ applicationId: 'collect-limit' })
  builder
    .table<Review>('reviews', { name: 'reviews' })
    .groupBy((r) => r.product)
    .collect({ name: 'c', limit: 0 })
    .to('out')
  assert.throws(() => builder.build(), /limit/)
})

test("a hot parent's document (10,000 children, 60 listed, several chunks): one child's edit costs two store writes and re-emits only the chunk that holds it", async () => {
  const builder = new TopologyBuilder({ applicationId: 'collect-doc' })
  builder
    .table<Review>('reviews', { name: 'reviews' })
    .groupBy(
      (r) => r.product,
      (r) => ({ stars: r.stars, text: r.text }),
    )
    .collect({ name: 'listed', orderBy: (r) => r.stars, descending: true, limit: 60 })
    .chunk({
      entityType: 'product',
      strategy: { kind: 'recursive', size: 300, overlap: 0 },
      text: (doc: Collected<{ stars: number; text: string }>) =>
        doc.items.map((item) => `${item.key} (${item.value.stars}): ${item.value.text}`).join('\n\n'),
    })
    .embed()
    .toChunks('rag.chunks.collect-doc')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 3 })
  const children = Array.from({ length: 10_000 }, (_, i) => ({
    topic: 'reviews',
    key: `r${String(i).padStart(5, '0')}`,
    value: { product: 'hot', stars: 1 + (i % 5), text: `review number ${i} of the hot product` },
  }))
  for (let i = 0; i < children.length; i += 1_000) await driver.pipeBatch(children.slice(i, i + 1_000))
  const chunks = () => driver.readOutput('rag.chunks.collect-doc').map((r) => r.value as ChunkEvent | null)
  const document = chunks().filter((c): c is ChunkEvent => c !== null && c.entity_key === 'hot')
  const live = new Map(document.map((c) => [c.chunk_id, c]))
  assert.ok(live.size >= 5, `the document spans several chunks (${live.size})`)

  const store = driver.store('listed')!
  const writes: string[] = []
  const put = store.put.bind(store)
  const del = store.delete.bind(store)
  store.put = (partition, key, value) => (writes.push('put'), put(partition, key, value))
  store.delete = (partition, key) => (writes.push('delete'), del(partition, key))
  // r00004 (5 stars) is listed; its text changes, its stars do not.
  await driver.pipe('reviews', 'r00004', { product: 'hot', stars: 5, text: 'edited in place' })
  assert.deepEqual(writes, ['put', 'put'], "the child's entry and the document, whatever the parent's size")
  const emitted = chunks()
  assert.equal(emitted.length, 1, 'one chunk re-emitted, no tombstone')
  assert.match(emitted[0]!.text, /r00004 \(5\): edited in place/)
  assert.ok(live.has(emitted[0]!.chunk_id), 'in place: the chunk that held the child')
  writes.length = 0
  // An unlisted child's edit writes its entry only and re-emits nothing.
  await driver.pipe('reviews', 'r00000', { product: 'hot', stars: 1, text: 'unlisted edit' })
  assert.deepEqual(writes, ['put'])
  assert.deepEqual(chunks(), [])
  assert.deepEqual(driver.readDeadLetters(), [])
  await driver.close()
})
