// catalog under the test driver: the describe text, and the one-to-many document a data engineer
// wants — a product with its brand and its best reviews (top 5 by stars, all counted), re-emitted
// when a review is written, edited, moved to another product or deleted, with the reviewers' PII masked.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { describeApp } from '../../src/app/describe.ts'
import { buildDeletionRequest } from '../../src/governance/forget/deletion-request.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import app, { catalog, type Review } from '../../topologies/catalog.ts'

test('catalog: describe text is pinned', () => {
  assert.equal(
    describeApp(app),
    `Topology: catalog
   Sub-topology: 0
    Source: products-source (topics: [shop.products])
      --> products
    Processor: products (stores: [products]) [table: compacted]
      --> join-brands-subscription-send
      <-- products-source
    Processor: join-brands-subscription-send (stores: [])
      --> join-brands-subscription-sink, join-brands
      <-- products
    Sink: join-brands-subscription-sink (topic: catalog-join-brands-subscription-repartition)
      <-- join-brands-subscription-send
    Source: join-brands-response-source (topics: [catalog-join-brands-response-repartition])
      --> join-brands
    Processor: join-brands (stores: [products, join-brands]) [fk-join: left]
      --> join-reviews-subscription-send
      <-- join-brands-subscription-send, join-brands-response-source
    Processor: join-reviews-subscription-send (stores: [])
      --> join-reviews-subscription-sink, join-reviews
      <-- join-brands
    Sink: join-reviews-subscription-sink (topic: catalog-join-reviews-subscription-repartition)
      <-- join-reviews-subscription-send
    Source: join-reviews-response-source (topics: [catalog-join-reviews-response-repartition])
      --> join-reviews
    Processor: join-reviews (stores: [join-brands]) [fk-join: left]
      --> govern
      <-- join-reviews-subscription-send, join-reviews-response-source
    Source: govern-broadcast-source (topics: [catalog-govern-deletions-broadcast-repartition])
      --> govern
    Processor: govern (stores: [govern-forgotten-subjects, govern-subject-index, join-brands, products, chunk-embed-chunk-sets, reviews-subjects]) [govern: catalog@1, forget FOREVER, async, batched]
      --> govern-audit-sink, govern-reviews-forget-sink, chunk-embed
      <-- join-reviews, govern-broadcast-source
    Sink: govern-audit-sink (topic: rag.chunks.catalog)
      <-- govern
    Sink: govern-reviews-forget-sink (topic: catalog-reviews-forget-repartition)
      <-- govern
    Processor: chunk-embed (stores: [chunk-embed-chunk-sets]) [chunk product (recursive(size=800,overlap=0,unit=chars)+template:69f3523f) → diff → embed, async, batched]
      --> chunk-events
      <-- govern
    Sink: chunk-events (topic: rag.chunks.catalog)
      <-- chunk-embed
   Sub-topology: 1
    Source: brands-source (topics: [shop.brands])
      --> brands
    Processor: brands (stores: [brands]) [table: compacted]
      --> join-brands-right-change
      <-- brands-source
    Source: join-brands-subscription-source (topics: [catalog-join-brands-subscription-repartition])
      --> join-brands-subscription-receive
    Processor: join-brands-subscription-receive (stores: [join-brands-subscriptions, brands, join-brands-right])
      --> join-brands-response-sink
      <-- join-brands-subscription-source
    Processor: join-brands-right-change (stores: [join-brands-subscriptions])
      --> join-brands-response-sink, join-brands-right-sink
      <-- brands
    Sink: join-brands-right-sink (topic: catalog-join-brands-right-repartition)
      <-- join-brands-right-change
    Source: join-brands-right-source (topics: [catalog-join-brands-right-repartition])
      --> join-brands-right-receive
    Processor: join-brands-right-receive (stores: [join-brands-subscriptions, join-brands-right])
      --> join-brands-response-sink
      <-- join-brands-right-source
    Sink: join-brands-response-sink (topic: catalog-join-brands-response-repartition)
      <-- join-brands-subscription-receive, join-brands-right-change, join-brands-right-receive
   Sub-topology: 2
    Source: reviews-source (topics: [shop.reviews])
      --> reviews
    Source: reviews-forget-source (topics: [catalog-reviews-forget-repartition])
      --> reviews
    Processor: reviews (stores: [reviews, reviews-subjects]) [table: compacted]
      --> product-reviews-groupby-map
      <-- reviews-source, reviews-forget-source
    Processor: product-reviews-groupby-map (stores: [])
      --> product-reviews-groupby-sink
      <-- reviews
    Sink: product-reviews-groupby-sink (topic: catalog-product-reviews-groupby-repartition)
      <-- product-reviews-groupby-map
   Sub-topology: 3
    Source: product-reviews-groupby-source (topics: [catalog-product-reviews-groupby-repartition])
      --> product-reviews
    Processor: product-reviews (stores: [product-reviews]) [aggregate: collect]
      --> join-reviews-right-change
      <-- product-reviews-groupby-source
    Source: join-reviews-subscription-source (topics: [catalog-join-reviews-subscription-repartition])
      --> join-reviews-subscription-receive
    Processor: join-reviews-subscription-receive (stores: [join-reviews-subscriptions, product-reviews, join-reviews-right])
      --> join-reviews-response-sink
      <-- join-reviews-subscription-source
    Processor: join-reviews-right-change (stores: [join-reviews-subscriptions])
      --> join-reviews-response-sink, join-reviews-right-sink
      <-- product-reviews
    Sink: join-reviews-right-sink (topic: catalog-join-reviews-right-repartition)
      <-- join-reviews-right-change
    Source: join-reviews-right-source (topics: [catalog-join-reviews-right-repartition])
      --> join-reviews-right-receive
    Processor: join-reviews-right-receive (stores: [join-reviews-subscriptions, join-reviews-right])
      --> join-reviews-response-sink
      <-- join-reviews-right-source
    Sink: join-reviews-response-sink (topic: catalog-join-reviews-response-repartition)
      <-- join-reviews-subscription-receive, join-reviews-right-change, join-reviews-right-receive
   Sub-topology: 4
    Source: govern-deletions-source (topics: [governance.deletions])
      --> govern-deletions-broadcast
    Processor: govern-deletions-broadcast (stores: []) [one copy per partition]
      --> govern-broadcast-sink
      <-- govern-deletions-source
    Sink: govern-broadcast-sink (topic: catalog-govern-deletions-broadcast-repartition)
      <-- govern-deletions-broadcast
Stores:
    products (owner: products, changelog: catalog-products-changelog)
    brands (owner: brands, changelog: catalog-brands-changelog)
    reviews (owner: reviews, changelog: catalog-reviews-changelog)
    reviews-subjects (owner: reviews, changelog: catalog-reviews-subjects-changelog)
    product-reviews (owner: product-reviews, changelog: catalog-product-reviews-changelog)
    join-brands (owner: join-brands, changelog: catalog-join-brands-changelog)
    join-brands-subscriptions (owner: join-brands, changelog: catalog-join-brands-subscriptions-changelog)
    join-brands-right (owner: join-brands, changelog: catalog-join-brands-right-changelog)
    join-reviews-subscriptions (owner: join-reviews, changelog: catalog-join-reviews-subscriptions-changelog)
    join-reviews-right (owner: join-reviews, changelog: catalog-join-reviews-right-changelog)
    govern-forgotten-subjects (owner: govern, changelog: catalog-govern-forgotten-subjects-changelog)
    govern-subject-index (owner: govern, changelog: catalog-govern-subject-index-changelog)
    chunk-embed-chunk-sets (owner: chunk-embed, changelog: catalog-chunk-embed-chunk-sets-changelog)
Topics:
    source: shop.products (partitions: external)
    source: shop.brands (partitions: external)
    source: shop.reviews (partitions: external)
    source: governance.deletions (partitions: external)
    changelog: catalog-products-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store products
    changelog: catalog-brands-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store brands
    changelog: catalog-reviews-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store reviews
    changelog: catalog-reviews-subjects-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store reviews-subjects (row keys per subject, for forgetting)
    repartition: catalog-reviews-forget-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — reviews rows of forgotten subjects (keys only), keyed by row key: deleted from every aggregate
    changelog: catalog-product-reviews-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store product-reviews (the aggregate per group key)
    repartition: catalog-product-reviews-groupby-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — product-reviews child changes (subtract old, add new), keyed by group key
    changelog: catalog-join-brands-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-brands (the join result, read by another join)
    changelog: catalog-join-brands-subscriptions-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-brands-subscriptions
    changelog: catalog-join-brands-right-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-brands-right
    repartition: catalog-join-brands-subscription-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-brands subscriptions, keyed by foreign key
    repartition: catalog-join-brands-response-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-brands responses, keyed by left key
    repartition: catalog-join-brands-right-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-brands right rows not on their key's partition, keyed by right key
    changelog: catalog-join-reviews-subscriptions-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-reviews-subscriptions
    changelog: catalog-join-reviews-right-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-reviews-right
    repartition: catalog-join-reviews-subscription-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-reviews subscriptions, keyed by foreign key
    repartition: catalog-join-reviews-response-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-reviews responses, keyed by left key
    repartition: catalog-join-reviews-right-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-reviews right rows not on their key's partition, keyed by right key
    changelog: catalog-govern-forgotten-subjects-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store govern-forgotten-subjects
    changelog: catalog-govern-subject-index-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store govern-subject-index
    repartition: catalog-govern-deletions-broadcast-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — govern deletion requests, one copy per partition
    changelog: catalog-chunk-embed-chunk-sets-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store chunk-embed-chunk-sets
    sink: rag.chunks.catalog (partitions: external)
    dead-letter: catalog-dead-letter (partitions: as source topics) (cleanup.policy=delete, retention.ms=604800000, segment.ms=86400000) — records that failed, with error and source position headers
`,
  )
})

const PREFIX = 'cat'
const review = (id: string, product_sku: string | null, stars: number, text: string, reviewer_id = `u-${id}`) => ({
  topic: `${PREFIX}.reviews`,
  key: id,
  value: { id, product_sku, reviewer_id, stars, text } satisfies Review,
})

/** The product's document as the chunk table holds it: its chunks' texts in order. */
function documentOf(driver: TopologyTestDriver, sku: string): string {
  const chunks = [...driver.readTable('rag.chunks.catalog').values()].filter(
    (v): v is ChunkEvent => (v as ChunkEvent | null)?.entity_key === sku && 'chunk_index' in (v as object),
  )
  return chunks
    .sort((a, b) => a.chunk_index - b.chunk_index)
    .map((c) => c.text)
    .join('')
}

test('catalog: a product document lists its best five reviews, follows every review change and masks reviewer PII', async () => {
  const driver = new TopologyTestDriver(catalog({ prefix: PREFIX }), { partitions: 3 })
  await driver.pipe(`${PREFIX}.brands`, 'b1', { id: 'b1', name: 'Acme' })
  await driver.pipe(`${PREFIX}.products`, 'k1', {
    sku: 'k1',
    name: 'Kettle',
    description: 'A 1.7 l kettle.',
    brand_id: 'b1',
  })
  await driver.pipe(`${PREFIX}.products`, 'k2', {
    sku: 'k2',
    name: 'Toaster',
    description: 'Two slots.',
    brand_id: 'b1',
  })
  await driver.pipeBatch([
    review('r1', 'k1', 3, 'Works.'),
    review('r2', 'k1', 5, 'Boils in two minutes.'),
    review('r3', 'k1', 1, 'Leaked after a week, write to ann.lee@example.com'),
    review('r4', 'k1', 4, 'Quiet.'),
    review('r5', 'k1', 2, 'Handle gets hot.'),
    review('r6', 'k1', 5, 'Pretty.'),
    review('r7', 'k2', 4, 'Even browning.'),
  ])
  assert.equal(
    documentOf(driver, 'k1'),
    'Kettle by Acme (6 reviews; listed ones average 3.8 stars)\n\nA 1.7 l kettle.\n\n' +
      '★★★★★ Boils in two minutes.\n\n★★★★★ Pretty.\n\n★★★★ Quiet.\n\n★★★ Works.\n\n★★ Handle gets hot.',
  )
  // r5 (2 stars) moves to k2: k1's sixth review, the 1-star one, enters the list (its email masked).
  await driver.pipe(...args(review('r5', 'k2', 2, 'Handle gets hot.')))
  assert.match(documentOf(driver, 'k1'), /\(5 reviews;.*★ Leaked after a week, write to \[EMAIL\]$/s)
  assert.match(documentOf(driver, 'k2'), /^Toaster by Acme \(2 reviews;.*Even browning\.\n\n★★ Handle gets hot\.$/s)
  // Deleting a review re-emits its product without it; the product's own row never changed.
  await driver.pipe(...args({ ...review('r2', null, 0, ''), value: null }))
  assert.doesNotMatch(documentOf(driver, 'k1'), /Boils/)
  assert.match(documentOf(driver, 'k1'), /^Kettle by Acme \(4 reviews;/)
  assert.doesNotMatch(JSON.stringify([...driver.readTable('rag.chunks.catalog').values()]), /ann\.lee/)
  assert.deepEqual(driver.readDeadLetters(), [])
  await driver.close()
})

function args(record: { topic: string; key: string; value: unknown }): [string, string, unknown] {
  return [record.topic, record.key, record.value]
}

/** JSON of every store's keys and values (parsed), for "nothing of the reviewer is left" checks. */
function everyStore(driver: TopologyTestDriver): string {
  return JSON.stringify(driver.processor.storeNames.map((name) => [name, [...driver.readStore(name)]]))
}

test('catalog: forgetting a reviewer takes their reviews out of every product, which stays indexed; their later reviews never enter', async () => {
  const driver = new TopologyTestDriver(catalog({ prefix: PREFIX }), { partitions: 3 })
  await driver.pipe(`${PREFIX}.brands`, 'b1', { id: 'b1', name: 'Acme' })
  for (const [sku, name] of [
    ['k1', 'Kettle'],
    ['k2', 'Toaster'],
    ['k3', 'Grinder'],
  ])
    await driver.pipe(`${PREFIX}.products`, sku, { sku, name, description: `The ${name}.`, brand_id: 'b1' })
  await driver.pipeBatch([
    review('r1', 'k1', 4, 'Quiet.'),
    review('r2', 'k1', 5, 'Zephyrine boils fast.', 'ann'),
    review('r3', 'k2', 3, 'Zephyrine likes the crumb tray.', 'ann'),
    review('r4', 'k2', 2, 'Uneven.'),
    review('r5', 'k3', 1, 'Zephyrine found it loud.', 'ann'), // k3's only review
  ])
  assert.match(documentOf(driver, 'k1'), /Zephyrine boils fast/)
  assert.match(documentOf(driver, 'k3'), /\(1 reviews;.*Zephyrine found it loud/s)
  assert.match(everyStore(driver), /Zephyrine/, 'the stores hold her reviews before the forget')
  assert.match(everyStore(driver), /"[^"]*r5"/, 'and her review keys')
  driver.readOutput('rag.chunks.catalog')

  const request = buildDeletionRequest({
    subject: 'reviewer:ann',
    reason: 'erasure request',
    requestedBy: 'dpo',
    requestedAtMs: Date.now(),
  })
  await driver.pipe('governance.deletions', 'reviewer:ann', request)

  // Every product she reviewed is re-chunked without her reviews and stays indexed.
  assert.equal(
    documentOf(driver, 'k1'),
    'Kettle by Acme (1 reviews; listed ones average 4 stars)\n\nThe Kettle.\n\n★★★★ Quiet.',
  )
  assert.equal(
    documentOf(driver, 'k2'),
    'Toaster by Acme (1 reviews; listed ones average 2 stars)\n\nThe Toaster.\n\n★★ Uneven.',
  )
  assert.equal(documentOf(driver, 'k3'), 'Grinder by Acme (0 reviews; listed ones average  stars)\n\nThe Grinder.')
  const emitted = driver.readOutput('rag.chunks.catalog').map((r) => r.value as (ChunkEvent & { kind?: string }) | null)
  const chunks = emitted.filter((v): v is ChunkEvent => v !== null && 'chunk_index' in v)
  assert.deepEqual([...new Set(chunks.map((c) => c.entity_key))].sort(), ['k1', 'k2', 'k3'], 'her products re-emitted')
  for (const c of chunks)
    assert.equal(
      c.lineage.change?.topic,
      'governance.deletions',
      'the new version names the deletion request as its change',
    )
  assert.equal(emitted.includes(null), false, 'no product chunk tombstoned: one chunk each, rewritten in place')
  const applied = emitted.filter((v) => (v as { kind?: string } | null)?.kind === 'DELETION_APPLIED')
  assert.equal(applied.length, 3, 'one DELETION_APPLIED per partition')
  assert.equal(
    applied.reduce(
      (n, a) => n + ((a as unknown as { counts: Record<string, number> }).counts['store_keys_removed:reviews'] ?? 0),
      0,
    ),
    3,
    'her three reviews were sent back to their table',
  )
  assert.doesNotMatch(JSON.stringify([...driver.readTable('rag.chunks.catalog').values()]), /Zephyrine/)
  const stores = everyStore(driver)
  assert.doesNotMatch(stores, /Zephyrine/, 'no store holds her text')
  for (const key of ['r2', 'r3', 'r5']) assert.doesNotMatch(stores, new RegExp(`"[^"]*${key}"`), `no store key ${key}`)

  // A later review of hers never enters an aggregate; other reviewers' still do.
  await driver.pipeBatch([review('r6', 'k1', 5, 'Zephyrine is back.', 'ann'), review('r7', 'k1', 3, 'Fine.')])
  assert.doesNotMatch(everyStore(driver), /Zephyrine|"r6"/)
  assert.match(documentOf(driver, 'k1'), /^Kettle by Acme \(2 reviews;.*★★★★ Quiet\.\n\n★★★ Fine\.$/s)
  assert.deepEqual(driver.readDeadLetters(), [])
  await driver.close()
})

test("catalog: a product re-emitted for a review's change names that change in its chunks' lineage (position and time)", async () => {
  const driver = new TopologyTestDriver(catalog({ prefix: PREFIX }), { partitions: 3 })
  await driver.pipe(`${PREFIX}.brands`, 'b1', { id: 'b1', name: 'Acme' }, { timestamp: 1_000n })
  const product = { sku: 'k1', name: 'Kettle', description: 'A kettle.', brand_id: 'b1' }
  await driver.pipe(`${PREFIX}.products`, 'k1', product, { timestamp: 2_000n })
  const changes = () =>
    driver
      .readOutput('rag.chunks.catalog')
      .flatMap((r) =>
        (r.value as ChunkEvent | null)?.lineage === undefined ? [] : [(r.value as ChunkEvent).lineage.change],
      )
  assert.deepEqual(changes(), [
    {
      topic: `${PREFIX}.products`,
      partition: partitionForString('k1', 3),
      offset: 0,
      timestamp_ms: 2_000,
      appended_at_ms: 2_000,
    },
  ])
  // A review, a move and a delete each re-emit the product; its lineage names that review change.
  await driver.pipe(...args(review('r1', 'k1', 4, 'Quiet.')), { timestamp: 5_000n })
  const at = { topic: `${PREFIX}.reviews`, partition: partitionForString('r1', 3) }
  assert.deepEqual(changes(), [{ ...at, offset: 0, timestamp_ms: 5_000, appended_at_ms: 5_000 }])
  await driver.pipe(...args(review('r1', 'k1', 4, 'Quiet, and fast.')), { timestamp: 6_000n })
  assert.deepEqual(changes(), [{ ...at, offset: 1, timestamp_ms: 6_000, appended_at_ms: 6_000 }])
  await driver.pipe(`${PREFIX}.reviews`, 'r1', null, { timestamp: 7_000n })
  assert.deepEqual(changes(), [{ ...at, offset: 2, timestamp_ms: 7_000, appended_at_ms: 7_000 }])
  await driver.close()
})
