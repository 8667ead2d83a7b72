// catalog under the test driver: the describe text, and the one-to-many document a data engineer
// wants — a product with its brand and its best reviews (top 5 by stars, all counted), re-emitted
// when a review is written, edited, moved to another product or deleted, with the reviewers' PII masked.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { describeApp } from '../../src/app/describe.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
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
    Processor: govern (stores: [govern-subject-index]) [govern: catalog@1, no forget, async, batched]
      --> govern-audit-sink, chunk-embed
      <-- join-reviews
    Sink: govern-audit-sink (topic: rag.chunks.catalog)
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
    Processor: reviews (stores: [reviews]) [table: compacted]
      --> product-reviews-groupby-map
      <-- reviews-source
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
Stores:
    products (owner: products, changelog: catalog-products-changelog)
    brands (owner: brands, changelog: catalog-brands-changelog)
    reviews (owner: reviews, changelog: catalog-reviews-changelog)
    product-reviews (owner: product-reviews, changelog: catalog-product-reviews-changelog)
    join-brands (owner: join-brands, changelog: catalog-join-brands-changelog)
    join-brands-subscriptions (owner: join-brands, changelog: catalog-join-brands-subscriptions-changelog)
    join-brands-right (owner: join-brands, changelog: catalog-join-brands-right-changelog)
    join-reviews-subscriptions (owner: join-reviews, changelog: catalog-join-reviews-subscriptions-changelog)
    join-reviews-right (owner: join-reviews, changelog: catalog-join-reviews-right-changelog)
    govern-subject-index (owner: govern, changelog: catalog-govern-subject-index-changelog)
    chunk-embed-chunk-sets (owner: chunk-embed, changelog: catalog-chunk-embed-chunk-sets-changelog)
Topics:
    source: shop.products (partitions: external)
    source: shop.brands (partitions: external)
    source: shop.reviews (partitions: external)
    changelog: catalog-products-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store products
    changelog: catalog-brands-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store brands
    changelog: catalog-reviews-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store reviews
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
    changelog: catalog-govern-subject-index-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store govern-subject-index
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
