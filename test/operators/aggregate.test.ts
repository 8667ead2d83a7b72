// `groupBy(…).aggregate / count / reduce` on the test driver: KTable semantics (a child moving groups
// leaves the old one, a tombstone subtracts, an empty group is deleted), equal to an aggregate computed
// directly from the final inputs on seeded random change streams, restorable from its changelog,
// joinable, a throw dead-letters its record, describe shows the repartition topic, store and changelog.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { buildDeletionRequest } from '../../src/governance/forget/deletion-request.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'
import { seededRandom } from '../support/seeded-random.ts'

interface Review {
  readonly product: string | null
  readonly stars: number
}

interface Stars {
  readonly sum: number
  readonly n: number
}

function reviewTopology(app: string) {
  const builder = new TopologyBuilder({ applicationId: app })
  const reviews = builder.table<Review>('reviews', { name: 'reviews' })
  reviews
    .groupBy((r) => r.product)
    .count({ name: 'review-count' })
    .to('counts')
  reviews
    .groupBy(
      (r) => r.product,
      (r) => r.stars,
    )
    .aggregate<Stars>(
      () => ({ sum: 0, n: 0 }),
      (a, stars) => ({ sum: a.sum + stars, n: a.n + 1 }),
      (a, stars) => ({ sum: a.sum - stars, n: a.n - 1 }),
      { name: 'stars' },
    )
    .to('stars')
  reviews
    .groupBy(
      (r) => r.product,
      (r) => r.stars,
    )
    .reduce(
      (a, b) => a + b,
      (a, b) => a - b,
      { name: 'star-sum' },
    )
    .to('star-sums')
  return builder.build()
}

/** The aggregates computed directly from the final child rows. */
function direct(rows: ReadonlyMap<string, Review>) {
  const counts = new Map<string, number>()
  const stars = new Map<string, Stars>()
  const sums = new Map<string, number>()
  for (const r of rows.values()) {
    if (r.product === null) continue
    counts.set(r.product, (counts.get(r.product) ?? 0) + 1)
    const s = stars.get(r.product) ?? { sum: 0, n: 0 }
    stars.set(r.product, { sum: s.sum + r.stars, n: s.n + 1 })
    sums.set(r.product, (sums.get(r.product) ?? 0) + r.stars)
  }
  return { counts, stars, sums }
}

const sorted = <V>(m: ReadonlyMap<string, V>) => new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

test('a child moving parents leaves the old group; a tombstone subtracts; a group without children is deleted', async () => {
  const driver = new TopologyTestDriver(reviewTopology('agg-basic'), { partitions: 3 })
  await driver.pipe('reviews', 'r1', { product: 'p1', stars: 5 })
  await driver.pipe('reviews', 'r2', { product: 'p1', stars: 3 })
  await driver.pipe('reviews', 'r3', { product: 'p2', stars: 1 })
  assert.deepEqual(
    sorted(driver.readTable('counts')),
    new Map([
      ['p1', 2],
      ['p2', 1],
    ]),
  )
  assert.deepEqual(driver.readTable('stars').get('p1'), { sum: 8, n: 2 })
  // r2 moves to p2: subtract from p1, add to p2.
  await driver.pipe('reviews', 'r2', { product: 'p2', stars: 4 })
  assert.deepEqual(
    sorted(driver.readTable('counts')),
    new Map([
      ['p1', 1],
      ['p2', 2],
    ]),
  )
  assert.deepEqual(driver.readTable('stars').get('p2'), { sum: 5, n: 2 })
  assert.equal(driver.readTable('star-sums').get('p2'), 5)
  // r1 deleted: p1 has no children left, so it is deleted downstream.
  await driver.pipe('reviews', 'r1', null)
  assert.equal(driver.readTable('counts').has('p1'), false)
  assert.deepEqual(driver.readOutput('counts').at(-1)?.value ?? null, null)
  // A child without a group contributes nothing; changing only its value within a group updates in place.
  await driver.pipe('reviews', 'r4', { product: null, stars: 2 })
  await driver.pipe('reviews', 'r3', { product: 'p2', stars: 2 })
  assert.deepEqual(driver.readTable('stars').get('p2'), { sum: 6, n: 2 })
  assert.equal(driver.readTable('star-sums').get('p2'), 6)
  // p1 comes back from the initializer, not from what it held before.
  await driver.pipe('reviews', 'r5', { product: 'p1', stars: 1 })
  assert.deepEqual(driver.readTable('stars').get('p1'), { sum: 1, n: 1 })
  assert.equal(driver.readTable('star-sums').get('p1'), 1)
  // The same row again changes nothing downstream.
  const before = driver.allOutput('counts').length
  await driver.pipe('reviews', 'r5', { product: 'p1', stars: 1 })
  assert.equal(driver.allOutput('counts').length, before)
  await driver.close()
})

for (const seed of [1, 2, 3, 4]) {
  test(`seeded change streams (seed ${seed}): the aggregates equal the ones computed from the final rows, also after a restore`, async () => {
    const random = seededRandom(seed)
    const driver = new TopologyTestDriver(reviewTopology(`agg-diff-${seed}`), { partitions: 4 })
    const rows = new Map<string, Review>()
    const products = ['hot', 'p1', 'p2', 'p3', 'p4', 'p5']
    for (let i = 0; i < 60; i++) {
      const batch = []
      for (let j = 0; j < 20; j++) {
        const key = `r${Math.floor(random() * 80)}`
        const roll = random()
        if (roll < 0.15) {
          rows.delete(key)
          batch.push({ topic: 'reviews', key, value: null })
        } else {
          // A hot parent gets half of the children.
          const product = roll < 0.2 ? null : random() < 0.5 ? 'hot' : products[Math.floor(random() * products.length)]
          const review = { product, stars: 1 + Math.floor(random() * 5) }
          rows.set(key, review)
          batch.push({ topic: 'reviews', key, value: review })
        }
      }
      await driver.pipeBatch(batch)
      if (i === 30) await driver.restoreStoresFromChangelogs()
    }
    const want = direct(rows)
    assert.deepEqual(sorted(driver.readTable('counts')), sorted(want.counts))
    assert.deepEqual(sorted(driver.readTable('stars')), sorted(want.stars))
    assert.deepEqual(sorted(driver.readTable('star-sums')), sorted(want.sums))
    assert.equal(driver.readDeadLetters().length, 0)
    await driver.close()
  })
}

test('an aggregate is a table: a join reads it by the parent key', async () => {
  const builder = new TopologyBuilder({ applicationId: 'agg-join' })
  const counts = builder
    .table<Review>('reviews', { name: 'reviews' })
    .groupBy((r) => r.product)
    .count({ name: 'review-count' })
  builder
    .table<{ title: string }>('products', { name: 'products' })
    .join(counts, {
      name: 'with-counts',
      type: 'left',
      foreignKey: (_p) => null,
      joiner: (p, n) => ({ ...p, reviews: n ?? 0 }),
    })
    .to('unused')
  builder
    .table<{ title: string; id: string }>('catalog', { name: 'catalog' })
    .join(counts, {
      name: 'catalog-counts',
      type: 'left',
      foreignKey: (p) => p.id,
      joiner: (p, n) => ({ title: p.title, reviews: n ?? 0 }),
    })
    .to('documents')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 3 })
  await driver.pipe('catalog', 'p1', { id: 'p1', title: 'Kettle' })
  assert.deepEqual(driver.readTable('documents').get('p1'), { title: 'Kettle', reviews: 0 })
  await driver.pipe('reviews', 'r1', { product: 'p1', stars: 5 })
  await driver.pipe('reviews', 'r2', { product: 'p1', stars: 4 })
  assert.deepEqual(driver.readTable('documents').get('p1'), { title: 'Kettle', reviews: 2 })
  await driver.pipe('reviews', 'r1', null)
  await driver.pipe('reviews', 'r2', null)
  assert.deepEqual(driver.readTable('documents').get('p1'), { title: 'Kettle', reviews: 0 })
  await driver.close()
})

test('a throw in the adder dead-letters that change, names the aggregate, and leaves the group as it was', async () => {
  const builder = new TopologyBuilder({ applicationId: 'agg-throw' })
  builder
    .table<Review>('reviews', { name: 'reviews' })
    .groupBy(
      (r) => r.product,
      (r) => r.stars,
    )
    .aggregate<number>(
      () => 0,
      (sum, stars) => {
        if (stars === 13) throw new Error('unlucky')
        return sum + stars
      },
      (sum, stars) => sum - stars,
      { name: 'sum' },
    )
    .to('sums')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 2 })
  await driver.pipe('reviews', 'r1', { product: 'p1', stars: 2 })
  await driver.pipe('reviews', 'r2', { product: 'p1', stars: 13 })
  assert.equal(driver.readTable('sums').get('p1'), 2)
  const [dead] = driver.readDeadLetters()
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.node], 'sum')
  assert.deepEqual(driver.readStore('sum').get('p1'), { n: 1, v: 2 })
  await driver.close()
})

test('a group key that is not a string dead-letters the child change with RS_RECORD_INVALID', async () => {
  const builder = new TopologyBuilder({ applicationId: 'agg-badkey' })
  builder
    .table<{ product: unknown }>('reviews', { name: 'reviews' })
    .groupBy((r) => r.product as string)
    .count({ name: 'n' })
    .to('counts')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 2 })
  await driver.pipe('reviews', 'r1', { product: 42 })
  const [dead] = driver.readDeadLetters()
  assert.equal(dead.key, 'r1')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.node], 'n')
  assert.match(JSON.stringify(dead.headers), /RS_RECORD_INVALID/)
  assert.equal(driver.readStore('reviews').has('r1'), false, "the child's table write is undone")
  await driver.close()
})

test('describe shows the group-by repartition topic, the store and its changelog; the name is required', () => {
  const text = reviewTopology('agg-describe').describe()
  assert.match(text, /Processor: stars-groupby-map/)
  assert.match(text, /agg-describe-stars-groupby-repartition/)
  assert.match(text, /Processor: stars .*\(stores: \[stars\]\)|Processor: stars[\s\S]*stores: \[stars\]/)
  assert.match(text, /agg-describe-stars-changelog/)
  const builder = new TopologyBuilder({ applicationId: 'agg-unnamed' })
  builder
    .table<Review>('reviews', { name: 'reviews' })
    .groupBy((r) => r.product)
    .count(undefined as unknown as { name: string })
    .to('counts')
  assert.throws(() => builder.build(), /RS_TOPOLOGY_INVALID|name/)
})

test('a stage output cannot be grouped', () => {
  const builder = new TopologyBuilder({ applicationId: 'agg-stage' })
  builder
    .table<Review>('reviews', { name: 'reviews' })
    .stage({ name: 'st', kind: 'custom', processor: { process: async (items) => items.map(() => []) } })
    .groupBy(() => 'x')
    .count({ name: 'n' })
    .to('counts')
  assert.throws(() => builder.build(), /must be a table/)
})

test('a change to one child of a parent with 10,000 children costs a constant number of store writes', async () => {
  const builder = new TopologyBuilder({ applicationId: 'agg-hot' })
  builder
    .table<Review>('reviews', { name: 'reviews' })
    .groupBy(
      (r) => r.product,
      (r) => r.stars,
    )
    .aggregate<number>(
      () => 0,
      (sum, stars) => sum + stars,
      (sum, stars) => sum - stars,
      { name: 'sum' },
    )
    .to('sums')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 3 })
  const children = Array.from({ length: 10_000 }, (_, i) => ({
    topic: 'reviews',
    key: `r${i}`,
    value: { product: 'hot', stars: 1 },
  }))
  for (let i = 0; i < children.length; i += 1_000) await driver.pipeBatch(children.slice(i, i + 1_000))
  assert.equal(driver.readTable('sums').get('hot'), 10_000)
  const store = driver.store('sum')!
  const writes: string[] = []
  const put = store.put.bind(store)
  const del = store.delete.bind(store)
  store.put = (partition, key, value) => (writes.push(`put ${key}`), put(partition, key, value))
  store.delete = (partition, key) => (writes.push(`delete ${key}`), del(partition, key))
  const changelog = () => driver.allOutput('agg-hot-sum-changelog').length
  const before = changelog()
  await driver.pipe('reviews', 'r17', { product: 'hot', stars: 5 })
  assert.deepEqual(writes, ['put hot'], 'one write of the group, whatever its size')
  assert.equal(changelog() - before, 1, 'one changelog record')
  assert.equal(driver.readTable('sums').get('hot'), 10_004)
  writes.length = 0
  await driver.pipe('reviews', 'r18', { product: 'cold', stars: 2 })
  assert.deepEqual(writes.sort(), ['put cold', 'put hot'], 'a move writes the old group and the new one')
  await driver.close()
})

for (const mode of ['FOREVER', 'BEFORE_REQUEST'] as const)
  test(`forgetting per contribution (${mode}): a subject's rows leave every aggregate they fed; later ones per the mode`, async () => {
    interface Rated {
      readonly product: string
      readonly by: string
      readonly stars: number
      readonly at: number
    }
    const builder = new TopologyBuilder({ applicationId: `agg-forget-${mode}` })
    const reviews = builder.table<Rated>('reviews', {
      name: 'reviews',
      // Each row carries its source change time as CDC lineage does (`_source.timestampMs`).
      decode: (key, value) => {
        if (key === null) throw new Error('no key')
        if (value === null) return { key: key.toString(), value: null }
        const row = JSON.parse(value.toString()) as Rated
        return { key: key.toString(), value: { ...row, _source: { timestampMs: row.at } } }
      },
      subject: (r) => `reviewer:${r.by}`,
    })
    reviews
      .groupBy((r) => r.product)
      .count({ name: 'count' })
      .to('counts')
    reviews
      .groupBy(
        (r) => r.product,
        (r) => r.stars,
      )
      .aggregate(
        () => 0,
        (sum: number, stars) => sum + stars,
        (sum, stars) => sum - stars,
        { name: 'stars' },
      )
      .govern({
        name: 'govern',
        policy: { name: 'p', version: '1' },
        document: (sum, key) => ({ text: `${key}: ${String(sum)} stars` }),
        forget: { deletionsTopic: 'deletions', mode },
        audit: { topic: 'audit' },
      })
      .to('documents')
    const driver = new TopologyTestDriver(builder.build(), { partitions: 3 })
    const review = (key: string, product: string, by: string, stars: number, at: number) => ({
      topic: 'reviews',
      key,
      value: { product, by, stars, at },
    })
    await driver.pipeBatch([
      review('r1', 'p', 'ann', 5, 1_000),
      review('r2', 'p', 'bob', 2, 1_000),
      review('r3', 'q', 'ann', 4, 5_000), // written after the request below
    ])
    const request = buildDeletionRequest({
      subject: 'reviewer:ann',
      reason: 'erasure',
      requestedBy: 'dpo',
      requestedAtMs: 3_000,
      mode,
    })
    await driver.pipe('deletions', 'reviewer:ann', request)
    const forever = mode === 'FOREVER'
    assert.deepEqual(
      sorted(driver.readTable('counts')),
      new Map(
        forever
          ? [['p', 1]]
          : [
              ['p', 1],
              ['q', 1],
            ],
      ),
    )
    assert.deepEqual(
      [...driver.readTable('documents')].map(([k, d]) => [k, (d as { text: string }).text]).sort(),
      forever
        ? [['p', 'p: 2 stars']]
        : [
            ['p', 'p: 2 stars'],
            ['q', 'q: 4 stars'],
          ],
      'the parents are re-emitted without her rows; one left without children goes',
    )
    assert.deepEqual([...driver.readStore('reviews').keys()].sort(), forever ? ['r2'] : ['r2', 'r3'])
    // Her later review: dropped where it enters under FOREVER, kept under BEFORE_REQUEST (after the request).
    await driver.pipe(...(Object.values(review('r4', 'p', 'ann', 3, 9_000)) as [string, string, unknown]))
    assert.equal(driver.readTable('counts').get('p'), forever ? 1 : 2)
    assert.deepEqual(driver.readDeadLetters(), [])
    await driver.close()
  })
