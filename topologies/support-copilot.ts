// support-copilot — the reference app: tickets (Debezium CDC) joined with their customer (CDC) and product,
// redacted as decoded, governed (classified, placed, forgotten by customer), chunked and embedded.
//   <prefix>.public.tickets ─► tickets ─ FK ─► customers ◄─ <prefix>.public.customers   (subject: customer)
//                                 └──── FK ─► products  ◄─ <prefix>.products
//   governance.deletions ─► govern ─► chunk → embed ─► rag.chunks.support-copilot (chunks + audit events)
import { cdcTableDecoder, DebeziumDecoder, defineApp, definePolicy, redactAtSource } from '../src/index.ts'
import { DEFAULT_CLASSIFICATION_LABELS, TopologyBuilder, UpsertDecoder, type AppDeployment } from '../src/index.ts'
import type { RowLineage, Topology } from '../src/index.ts'

type TicketText = { subject: string; body: string; status: string; priority: number; _source: RowLineage }
export type Ticket = TicketText & { id: number; customer_id: number | null; product_sku: string | null }
type CustomerLabels = { classification: string; region: string; tenant: string }
export type Customer = CustomerLabels & { id: number; tier: string; status: string }
export type Product = { sku: string; name: string; category: string }
export const SUPPORT_CHUNK_TOPIC = 'rag.chunks.support-copilot'
export const SUPPORT_DELETIONS_TOPIC = 'governance.deletions'
export const SUPPORT_REGIONS = ['eu', 'us', 'apac'] as const
export const SUPPORT_TEMPLATE = '{title}\nCustomer tier: {tier} | Product: {product}\n\n{text}'
const oneOf = (values: readonly unknown[], value: unknown): value is string => values.includes(value)

/** `support-copilot@2`: customer label (unknown → restricted), region (else denied), subject, name masked in text. */
export const supportPolicy = definePolicy({
  name: 'support-copilot',
  version: '2',
  redact: { joined: { name: 'name' } },
  classify: (_t, c) => (oneOf(DEFAULT_CLASSIFICATION_LABELS, c.classification) ? c.classification : 'restricted'),
  outputs: Object.fromEntries(SUPPORT_REGIONS.map((region) => [region, { maxClassification: 'restricted' }])),
  residency: (_t, c) => (oneOf(SUPPORT_REGIONS, c.region) ? c.region : { deny: 'customer missing or region unknown' }),
  subjects: (_t, c) => (c.customer_id == null ? [] : [`customer:${String(c.customer_id)}`]),
})

type Names = Pick<AppDeployment, 'applicationId' | 'version' | 'chunkTopic' | 'deletionsTopic' | 'services'>

/** One deployment of support-copilot over the topics of `prefix` (tests pass their own names and services). */
export function supportCopilot(o: Partial<Names> & { readonly prefix: string }): Topology {
  const { prefix, applicationId = 'support-copilot', version = 'v1', services } = o
  const builder = new TopologyBuilder({ applicationId, version, services })
  const json = new DebeziumDecoder({ valueFormat: 'json' })
  const tickets = builder.cdcTable<Ticket>(`${prefix}.public.tickets`, {
    name: 'tickets',
    decode: redactAtSource(cdcTableDecoder(json).decode),
    subject: (t: Ticket) => (t.customer_id === null ? null : `customer:${t.customer_id}`),
  })
  const customers = builder.cdcTable<Customer>(`${prefix}.public.customers`, {
    name: 'customers',
    decode: redactAtSource(cdcTableDecoder(json, { lineageField: false }).decode),
    subject: 'customer',
  })
  const products = builder.table<Product>(`${prefix}.products`, {
    name: 'products',
    decode: redactAtSource(cdcTableDecoder(new UpsertDecoder({ valueFormat: 'json' }), { lineageField: false }).decode),
  })
  tickets
    .join(customers, {
      name: 'join-customers',
      type: 'left',
      foreignKey: (t) => (t.customer_id === null ? null : String(t.customer_id)),
      joiner: (ticket, customer) => ({ ticket, customer }),
    })
    .join(products, {
      name: 'join-products',
      type: 'left',
      foreignKey: ({ ticket }) => ticket.product_sku,
      joiner: (tc, product) => ({ ...tc, product, _source: tc.ticket._source }), // the chunks' lineage: the ticket
    })
    .govern({
      name: 'govern',
      policy: supportPolicy,
      topologyVersion: version,
      document: ({ ticket: t, customer: c, product: p }) => ({
        text: t.body,
        metadata: {
          title: t.subject,
          status: t.status,
          priority: t.priority,
          tier: c?.tier ?? null,
          customer_status: c?.status ?? null,
          product: p?.name ?? null,
          product_sku: t.product_sku,
          product_category: p?.category ?? null,
        },
      }),
      joined: ({ ticket, customer }) => ({ ...customer, customer_id: ticket.customer_id }), // what the policy decides on
      tenant: ({ customer }) => customer?.tenant ?? null,
      forget: { deletionsTopic: o.deletionsTopic ?? SUPPORT_DELETIONS_TOPIC },
    })
    .chunk({ entityType: 'ticket', strategy: { kind: 'recursive', size: 600, overlap: 0 }, template: SUPPORT_TEMPLATE })
    .embed()
    .toChunks(o.chunkTopic ?? SUPPORT_CHUNK_TOPIC)
  return builder.build()
}

/** The app every command deploys; the framework derives each version's names and passes the services in. */
export default defineApp({
  name: 'support-copilot',
  sourcePrefix: { default: 'support', env: 'RAGSTREAM_SUPPORT_PREFIX' },
  deletionsTopic: (p) => (p === 'support' || !p ? SUPPORT_DELETIONS_TOPIC : `${p}.governance.deletions`),
  build: (d) => supportCopilot({ ...d, prefix: d.prefix! }),
})
