// Support tickets (a CDC table) enriched with their customer (a compacted metadata table) through a
// left foreign-key join, so a customer's change re-triggers every ticket document that points at it.
import { TopologyBuilder, type DecodedRecord } from '../src/dsl/index.ts'

interface Ticket {
  readonly id: number
  readonly customer_id: number | null
  readonly subject: string
  readonly body: string
  readonly status: string
}

interface Customer {
  readonly name: string
  readonly tier: string
  readonly classification: string
}

/*
 * Debezium JSON envelope, with or without the schema/payload wrapper: key {"id": n}, value
 * {"op": "c"|"u"|"r"|"d", "after": {...}}. Only what this example needs; the full decoder lives in
 * src/cdc.
 */
function decodeTicket(key: Buffer | null, value: Buffer | null): DecodedRecord {
  if (key === null) throw new Error('a ticket change needs a key')
  const parsedKey = JSON.parse(key.toString('utf8'))
  const id = String((parsedKey.payload ?? parsedKey).id)
  if (value === null) return { key: id, value: null }
  const parsed = JSON.parse(value.toString('utf8'))
  const envelope = parsed.payload ?? parsed
  return { key: id, value: envelope.op === 'd' ? null : envelope.after }
}

const builder = new TopologyBuilder({ applicationId: 'support-tickets' })

const customers = builder.table<Customer>('crm.customers', { name: 'customers' })

builder
  .cdcTable<Ticket>('pg.public.tickets', { name: 'tickets', decode: decodeTicket })
  .filter((ticket) => ticket.status !== 'spam', { name: 'drop-spam' })
  .join(customers, {
    name: 'join-customers',
    type: 'left',
    foreignKey: (ticket) => (ticket.customer_id === null ? null : String(ticket.customer_id)),
    joiner: (ticket, customer) => ({ ticket, customer }),
  })
  .mapValues(
    ({ ticket, customer }) => ({
      title: ticket.subject,
      text: ticket.body,
      customer: customer?.name ?? null,
      tier: customer?.tier ?? 'unknown',
      classification: customer?.classification ?? 'internal',
    }),
    { name: 'to-document' },
  )
  .to('support.documents')

export default builder.build()
