// support-copilot — the reference topology. Support tickets (Debezium CDC) joined by foreign key with
// their customer (Debezium CDC) and their product (a compacted metadata topic), chunked with a
// context template, embedded (hashing embedder, Redis embedding cache) and written as Avro chunk
// events to rag.chunks.support-copilot, the changelog of the chunk table the pgvector sink reads.
//
//   <prefix>.public.tickets ──► tickets ── left FK join ──► customers ◄── <prefix>.public.customers
//                                  │
//                                  └────── left FK join ──► products  ◄── <prefix>.products (compacted)
//                                  ▼
//                               govern (not yet: see below)
//                                  ▼
//                               chunk → diff → embed ──► rag.chunks.support-copilot (Avro, EOS)
//
// Topic names come from the prefix (the Debezium server name `ragstream generate --prefix` uses):
// RAGSTREAM_SUPPORT_PREFIX for `ragstream run`/`describe` (default `support`), or the
// `supportCopilot({ prefix, ... })` factory in tests.
import { DebeziumDecoder } from '../src/cdc/debezium.ts'
import type { RowLineage } from '../src/cdc/table-decoder.ts'
import { cdcTableDecoder } from '../src/cdc/table-decoder.ts'
import { UpsertDecoder } from '../src/cdc/upsert.ts'
import { chunkEmbedStage, chunkEventEncoder } from '../src/chunking/chunk-embed-stage.ts'
import { createChunker } from '../src/chunking/chunker.ts'
import { RagServices, withServicesOpen, type ChunkServices } from '../src/config/rag-services.ts'
import { TopologyBuilder } from '../src/dsl/index.ts'
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
  /** Embedder and chunk-event codec; opened by the first batch. */
  readonly services: ChunkServices
}

export const SUPPORT_CHUNK_TOPIC = 'rag.chunks.support-copilot'

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
  const builder = new TopologyBuilder({ applicationId })

  // ── sources: two CDC tables and a compacted metadata topic. JSON needs no per-batch schema loads,
  //    so only `decode` is taken from each decoder (an Avro source would pass `prepare` too).
  const tickets = builder.cdcTable<Ticket>(`${prefix}.public.tickets`, { name: 'tickets', decode: cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' })).decode })
  const customers = builder.cdcTable<Customer>(`${prefix}.public.customers`, {
    name: 'customers',
    decode: cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }), { lineageField: false }).decode,
  })
  const products = builder.table<Product>(`${prefix}.products`, { name: 'products', decode: cdcTableDecoder(new UpsertDecoder({ valueFormat: 'json' }), { lineageField: false }).decode })

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
    // ── GOVERN GOES HERE (issue 5): the governance `govern` stage (deny, classify, redact PII,
    //    residency routing, subjects, forgotten-subjects anti-join) will sit between the joins and
    //    the chunk stage. Until it does, ticket text is NOT redacted, and classification, tenant,
    //    region and subjects below are copied from the joined customer as they are.
    .stage({
      name: 'chunk-embed',
      kind: 'chunk+embed',
      stores: ['chunk-sets'],
      processor: withServicesOpen(
        services,
        chunkEmbedStage<TicketDocument>({
          topology: applicationId,
          version: options.version ?? 'v1',
          entityType: 'ticket',
          store: 'chunk-sets',
          chunker: createChunker({ strategy: { kind: 'recursive', size: 600, overlap: 0 }, template: SUPPORT_TEMPLATE }),
          embedder: services.embedder,
          text: (doc) => doc.body,
          metadata: (doc) => ({ title: doc.title, status: doc.status, priority: doc.priority, tier: doc.tier, customer_status: doc.customer_status, product_sku: doc.product_sku, product_category: doc.product_category }),
          governance: (doc) => ({
            classification: doc.classification,
            tenant: doc.tenant,
            region: doc.region,
            subjects: doc.customer_id === null ? [] : [`customer:${doc.customer_id}`],
          }),
        }),
      ),
    })
    // ── the chunk table's changelog: upserts then tombstones, keyed by chunk id, partitioned by ticket
    .to(options.chunkTopic ?? SUPPORT_CHUNK_TOPIC, { name: 'chunk-events', encode: chunkEventEncoder(services.chunkEvents) })

  return builder.build()
}

export default supportCopilot({
  prefix: process.env.RAGSTREAM_SUPPORT_PREFIX?.trim() || 'support',
  services: RagServices.fromEnv({ chunkTopic: SUPPORT_CHUNK_TOPIC }),
})
