// catalog — a one-to-many document: each product with its brand and a digest of its reviews (the top 5
// by stars, with the count), so a question about a product finds what its buyers said about it.
//   <prefix>.products ─► products ─ FK ─► brands ◄─ <prefix>.brands
//                           └──── FK ─► product-reviews ◄─ collect ◄─ groupBy product ◄─ reviews ◄─ <prefix>.reviews
//   governance.deletions ─► govern (classified public, redacted; forgets reviewers) ─► chunk → embed ─► rag.chunks.catalog
// A review names its reviewer (subject `reviewer:<id>`): forgetting a reviewer takes their reviews out
// of every product's digest, and the products, re-chunked without them, stay indexed.
import { defineApp, definePolicy, TopologyBuilder } from '../src/index.ts'
import type { AppDeployment, Collected, Topology } from '../src/index.ts'

export type Product = { sku: string; name: string; description: string; brand_id: string | null }
export type Brand = { id: string; name: string }
export type Review = { id: string; product_sku: string | null; reviewer_id: string; stars: number; text: string }
export type ReviewDigest = Pick<Review, 'stars' | 'text'>
export const CATALOG_CHUNK_TOPIC = 'rag.chunks.catalog'
export const CATALOG_DELETIONS_TOPIC = 'governance.deletions'
export const CATALOG_REVIEWS_LISTED = 5
export const CATALOG_TEMPLATE = '{title} by {brand} ({reviews} reviews; listed ones average {rating} stars)\n\n{text}'

/** `catalog@1`: product pages are public; every PII detector masks what reviewers wrote. */
export const catalogPolicy = definePolicy({ name: 'catalog', version: '1', classify: () => 'public' })

/** The text of a product document: its description, then its listed reviews, best first. */
export function productText(product: Product, reviews: Collected<ReviewDigest> | null): string {
  const listed = (reviews?.items ?? []).map((item) => `${'★'.repeat(item.value.stars)} ${item.value.text}`)
  return [product.description, ...listed].join('\n\n')
}

type Names = Pick<AppDeployment, 'applicationId' | 'version' | 'chunkTopic' | 'deletionsTopic' | 'services'>

/** One deployment of catalog over the topics of `prefix` (tests pass their own names and services). */
export function catalog(o: Partial<Names> & { readonly prefix: string }): Topology {
  const { prefix, applicationId = 'catalog', version = 'v1', services } = o
  const builder = new TopologyBuilder({ applicationId, version, services })
  const products = builder.table<Product>(`${prefix}.products`, { name: 'products' })
  const brands = builder.table<Brand>(`${prefix}.brands`, { name: 'brands' })
  const reviews = builder.table<Review>(`${prefix}.reviews`, {
    name: 'reviews',
    subject: (review) => `reviewer:${review.reviewer_id}`,
  })
  // ── the digest: a product's reviews, best first (ties: review key), at most 5 listed, all counted
  const productReviews = reviews
    .groupBy(
      (review) => review.product_sku,
      (review): ReviewDigest => ({ stars: review.stars, text: review.text }),
    )
    .collect({ name: 'product-reviews', orderBy: (r) => r.stars, descending: true, limit: CATALOG_REVIEWS_LISTED })
  products
    .join(brands, {
      name: 'join-brands',
      type: 'left',
      foreignKey: (p) => p.brand_id,
      joiner: (product, brand) => ({ product, brand: brand?.name ?? null }),
    })
    // ── the aggregate is a table keyed by sku: a review's change re-triggers its product's document
    .join(productReviews, {
      name: 'join-reviews',
      type: 'left',
      foreignKey: ({ product }) => product.sku,
      joiner: (pb, reviews) => ({ ...pb, reviews }),
    })
    .govern({
      name: 'govern',
      policy: catalogPolicy,
      topologyVersion: version,
      document: ({ product, brand, reviews }) => ({
        text: productText(product, reviews),
        metadata: {
          title: product.name,
          brand,
          reviews: reviews?.total ?? 0,
          rating: average((reviews?.items ?? []).map((item) => item.value.stars)),
        },
      }),
      forget: { deletionsTopic: o.deletionsTopic ?? CATALOG_DELETIONS_TOPIC },
    })
    .chunk({
      entityType: 'product',
      strategy: { kind: 'recursive', size: 800, overlap: 0 },
      template: CATALOG_TEMPLATE,
    })
    .embed()
    .toChunks(o.chunkTopic ?? CATALOG_CHUNK_TOPIC)
  return builder.build()
}

function average(values: readonly number[]): number | null {
  return values.length === 0 ? null : Math.round((values.reduce((a, b) => a + b, 0) / values.length) * 10) / 10
}

/** The app every command deploys; the framework derives each version's names and passes the services in. */
export default defineApp({
  name: 'catalog',
  sourcePrefix: { default: 'shop', env: 'RAGSTREAM_CATALOG_PREFIX' },
  deletionsTopic: (p) => (p === 'shop' || !p ? CATALOG_DELETIONS_TOPIC : `${p}.governance.deletions`),
  build: (d) => catalog({ ...d, prefix: d.prefix! }),
})
