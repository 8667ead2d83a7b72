// support-copilot — the reference topology. Support tickets (Debezium CDC) joined by foreign key with
// their customer (Debezium CDC) and their product (a compacted metadata topic), governed (PII
// redacted, classified and placed by the customer, subjects for forgetting), chunked with a context
// template, embedded (hashing embedder, Redis embedding cache) and written as Avro chunk events to
// rag.chunks.support-copilot, the changelog of the chunk table the pgvector sink reads.
//
//   <prefix>.public.tickets ──► tickets ── left FK join ──► customers ◄── <prefix>.public.customers
//     (redacted at source)         │                          (redacted at source)
//                                  └────── left FK join ──► products  ◄── <prefix>.products (compacted)
//                                  ▼
//   governance.deletions ──►    govern: redact PII · classify (customer) · residency (customer region) ·
//     (ragstream forget)                subjects customer:<id> · forgotten-subjects anti-join · audit
//                                  ▼
//                               chunk → diff → embed ──► rag.chunks.support-copilot (Avro chunks + audit events, EOS)
//
// Topic names come from the prefix (the Debezium server name `ragstream generate --prefix` uses):
// RAGSTREAM_SUPPORT_PREFIX for `ragstream run`/`describe` (default `support`), or the
// `supportCopilot({ prefix, ... })` factory in tests. The deletions topic must have the source
// topics' partition count.
import { DebeziumDecoder } from '../src/cdc/debezium.ts'
import type { RowLineage } from '../src/cdc/table-decoder.ts'
import { cdcTableDecoder } from '../src/cdc/table-decoder.ts'
import { UpsertDecoder } from '../src/cdc/upsert.ts'
import { chunkEmbedStage, chunkEventEncoder } from '../src/chunking/chunk-embed-stage.ts'
import { createChunker } from '../src/chunking/chunker.ts'
import { withServicesOpen, type GovernedChunkServices } from '../src/config/rag-services.ts'
import { TopologyBuilder } from '../src/dsl/index.ts'
import { defineApp } from '../src/index.ts'
import { auditEventOutput, deletionRequestCodec } from '../src/governance/forget/governance-codecs.ts'
import { DEFAULT_CLASSIFICATION_LABELS } from '../src/governance/classification.ts'
import { definePolicy } from '../src/governance/policy.ts'
import { redactAtSource, type GovernedDocument } from '../src/operators/govern/index.ts'
import type { Topology } from '../src/topology/topology.ts'

/** A row of `<prefix>.public.tickets` (columns as Debezium sends them; `_source` is the row's lineage). */
export interface Ticket {
  readonly id: number
  readonly customer_id: number | null
  readonly product_sku: string | null
  readonly subject: string
  readonly body: string
  readonly status: string
  readonly priority: number
  readonly _source: RowLineage
}

/** A row of `<prefix>.public.customers`. */
export interface Customer {
  readonly id: number
  readonly name: string
  readonly tenant: string
  readonly tier: string
  readonly region: string
  readonly status: string
  readonly classification: string
}

/** A row of `<prefix>.products` (plain JSON upserts keyed by SKU). */
export interface Product {
  readonly sku: string
  readonly name: string
  readonly category: string
}

/** What gets chunked: one ticket with what it needs from its customer and product. */
export interface TicketDocument {
  readonly title: string
  readonly body: string
  readonly status: string
  readonly priority: number
  readonly customer_id: number | null
  readonly tier: string | null
  readonly customer_status: string | null
  readonly product: string | null
  readonly product_sku: string | null
  readonly product_category: string | null
  readonly classification: string | null
  readonly tenant: string | null
  readonly region: string | null
  readonly _source: RowLineage
}

export interface SupportCopilotOptions {
  /** Topic prefix (Debezium server name): `<prefix>.public.tickets`, `<prefix>.public.customers`, `<prefix>.products`. */
  readonly prefix: string
  /** Consumer group, transactional-id and internal-topic prefix; default `support-copilot`. */
  readonly applicationId?: string
  /** Topology version in the chunk events' lineage; default `v1`. */
  readonly version?: string
  /** Default `rag.chunks.support-copilot`. */
  readonly chunkTopic?: string
  /** Governance deletion requests (Avro, what `ragstream forget` produces); default `governance.deletions`. */
  readonly deletionsTopic?: string
  /** Embedder, embedding cache, chunk-event codec and registry; opened by the first batch. */
  readonly services: GovernedChunkServices
}

export const SUPPORT_CHUNK_TOPIC = 'rag.chunks.support-copilot'
export const SUPPORT_DELETIONS_TOPIC = 'governance.deletions'

/** The regions customers live in; each is an output of the policy (a ticket of any other region is denied). */
export const SUPPORT_REGIONS = ['eu', 'us', 'apac'] as const

const customerIdOf = (subject: string): string | null =>
  subject.startsWith('customer:') ? subject.slice('customer:'.length) : null

/**
 * The support policy, versioned: every chunk records `support-copilot@1`. All PII detectors on
 * (masking), the customer's classification (an unknown label fails closed to `restricted`), the
 * customer's region as the output (a missing customer or an unknown region is denied), and the
 * customer as the data subject, so `ragstream forget --subject customer:42` removes its tickets.
 */
export const supportPolicy = definePolicy({
  name: 'support-copilot',
  version: '1',
  classify: (_ticket, customer) =>
    (DEFAULT_CLASSIFICATION_LABELS as readonly unknown[]).includes(customer.classification)
      ? (customer.classification as string)
      : 'restricted',
  // One chunk topic holds every region (analysts' row-level security filters by region); a region
  // per topic and table would be one chunk stage per output behind a filter (docs/governance.md).
  outputs: Object.fromEntries(SUPPORT_REGIONS.map((region) => [region, { maxClassification: 'restricted' }])),
  residency: (_ticket, customer) =>
    (SUPPORT_REGIONS as readonly unknown[]).includes(customer.region)
      ? (customer.region as string)
      : { deny: 'customer missing or region unknown' },
  subjects: (_ticket, customer) =>
    customer.customer_id === null || customer.customer_id === undefined
      ? []
      : [`customer:${String(customer.customer_id)}`],
})

/** Each chunk says which ticket, customer tier and product it belongs to. */
export const SUPPORT_TEMPLATE = '{title}\nCustomer tier: {tier} | Product: {product}\n\n{text}'

/**
 * Builds support-copilot over the topics of `prefix`.
 *
 * @example
 * ```ts
 * const services = RagServices.fromEnv({ chunkTopic: 'rag.chunks.support-copilot-acme' })
 * const topology = supportCopilot({ prefix: 'acme', applicationId: 'support-copilot-acme', chunkTopic: 'rag.chunks.support-copilot-acme', services })
 * const driver = new TopologyTestDriver(topology, { partitions: 3 })
 * ```
 */
export function supportCopilot(options: SupportCopilotOptions): Topology {
  const { prefix, services } = options
  const applicationId = options.applicationId ?? 'support-copilot'
  const version = options.version ?? 'v1'
  const chunkTopic = options.chunkTopic ?? SUPPORT_CHUNK_TOPIC
  const deletionsTopic = options.deletionsTopic ?? SUPPORT_DELETIONS_TOPIC
  const chunker = createChunker({ strategy: { kind: 'recursive', size: 600, overlap: 0 }, template: SUPPORT_TEMPLATE })
  const builder = new TopologyBuilder({ applicationId })

  // ── sources: two CDC tables and a compacted metadata topic. JSON needs no per-batch schema loads,
  //    so only `decode` is taken from each decoder (an Avro source would pass `prepare` too). Tickets
  //    and customers are redacted as they are decoded, so no store or changelog holds their raw PII.
  const tickets = builder.cdcTable<Ticket>(`${prefix}.public.tickets`, {
    name: 'tickets',
    decode: redactAtSource(cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' })).decode),
  })
  const customers = builder.cdcTable<Customer>(`${prefix}.public.customers`, {
    name: 'customers',
    decode: redactAtSource(
      cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }), { lineageField: false }).decode,
    ),
  })
  const products = builder.table<Product>(`${prefix}.products`, {
    name: 'products',
    decode: cdcTableDecoder(new UpsertDecoder({ valueFormat: 'json' }), { lineageField: false }).decode,
  })

  tickets
    // ── foreign-key joins: a customer's or a product's change re-triggers every ticket pointing at it
    .join(customers, {
      name: 'join-customers',
      type: 'left',
      foreignKey: (ticket) => (ticket.customer_id === null ? null : String(ticket.customer_id)),
      joiner: (ticket, customer) => ({ ticket, customer }),
    })
    .join(products, {
      name: 'join-products',
      type: 'left',
      foreignKey: ({ ticket }) => ticket.product_sku,
      joiner: ({ ticket, customer }, product): TicketDocument => ({
        title: ticket.subject,
        body: ticket.body,
        status: ticket.status,
        priority: ticket.priority,
        customer_id: ticket.customer_id,
        tier: customer?.tier ?? null,
        customer_status: customer?.status ?? null,
        product: product?.name ?? null,
        product_sku: ticket.product_sku,
        product_category: product?.category ?? null,
        classification: customer?.classification ?? null,
        tenant: customer?.tenant ?? null,
        region: customer?.region ?? null,
        _source: ticket._source, // the ticket's position: the chunk events' lineage
      }),
    })
    // ── govern: only what the policy lets through, redacted, goes on (the ticket row itself does not);
    //    a denied, forgotten or deleted ticket tombstones its chunks. A customer's reclassification,
    //    region move or forgetting reaches every ticket of it through the join.
    .govern({
      name: 'govern',
      policy: supportPolicy,
      topologyVersion: version,
      document: (doc) => ({
        text: doc.body,
        metadata: {
          title: doc.title,
          status: doc.status,
          priority: doc.priority,
          tier: doc.tier,
          customer_status: doc.customer_status,
          product: doc.product,
          product_sku: doc.product_sku,
          product_category: doc.product_category,
        },
      }),
      joined: (doc) => ({ customer_id: doc.customer_id, classification: doc.classification, region: doc.region }),
      tenant: (doc) => doc.tenant,
      forget: {
        deletionsTopic,
        decode: deletionRequestCodec({ registryUrl: services.registryUrl, topic: deletionsTopic }),
        entityStores: ['tickets', 'join-customers'],
        subjectStores: { customers: customerIdOf, 'join-customers-subscriptions': customerIdOf },
        chunkSets: [{ store: 'chunk-sets', entityType: 'ticket' }],
        embeddingCache: {
          cache: services.embeddingCache,
          namespace: () => services.embedder.model,
          contentHashes: (doc, key) =>
            chunker
              .chunk({
                topology: applicationId,
                entityType: 'ticket',
                entityKey: key,
                text: doc.text,
                fields: doc.metadata,
              })
              .map((c) => c.contentHash),
        },
      },
      // Audit events (denials, redaction counts, reclassifications, deletions applied) ride the chunk
      // topic, so the sink writes them in the transaction of the rows they explain.
      audit: auditEventOutput({ registryUrl: services.registryUrl, chunkTopic }),
    })
    .stage({
      name: 'chunk-embed',
      kind: 'chunk+embed',
      stores: ['chunk-sets'],
      processor: withServicesOpen(
        services,
        chunkEmbedStage<GovernedDocument>({
          topology: applicationId,
          version,
          entityType: 'ticket',
          store: 'chunk-sets',
          chunker,
          embedder: services.embedder,
          text: (doc) => doc.text,
          fields: (doc) => doc.metadata,
          metadata: (doc) => doc.metadata,
          governance: (doc) => ({
            classification: doc.classification,
            tenant: doc.tenant,
            region: doc.region,
            subjects: doc.subjects,
            policy_version: doc.policy_version,
          }),
        }),
      ),
    })
    // ── the chunk table's changelog: upserts then tombstones, keyed by chunk id, partitioned by ticket
    .to(chunkTopic, { name: 'chunk-events', encode: chunkEventEncoder(services.chunkEvents) })

  return builder.build()
}

/**
 * The app every command deploys (`ragstream run|sink|status|replay|promote support-copilot`): v1 keeps the
 * names above; the framework derives every other version's names and passes the services in.
 */
export default defineApp({
  name: 'support-copilot',
  sourcePrefix: { default: 'support', env: 'RAGSTREAM_SUPPORT_PREFIX' },
  deletionsTopic: (prefix) =>
    prefix === 'support' || prefix === undefined ? SUPPORT_DELETIONS_TOPIC : `${prefix}.governance.deletions`,
  build: (d) =>
    supportCopilot({
      prefix: d.prefix!,
      applicationId: d.applicationId,
      version: d.version,
      chunkTopic: d.chunkTopic,
      deletionsTopic: d.deletionsTopic,
      // the framework passes RagServices, governed-chunk services too (until this file uses the declarative tail)
      services: d.services as unknown as GovernedChunkServices,
    }),
})
