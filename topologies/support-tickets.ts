// Support tickets (a CDC table) enriched with their customer (a compacted metadata table) through a
// left foreign-key join, so a customer's change re-triggers every ticket document that points at it.
import { DebeziumDecoder } from '../src/index.ts'
import { cdcTableDecoder } from '../src/index.ts'
import { TopologyBuilder } from '../src/index.ts'

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

const builder = new TopologyBuilder({ applicationId: 'support-tickets' })

const customers = builder.table<Customer>('crm.customers', { name: 'customers' })

builder
  .cdcTable<Ticket>('pg.public.tickets', {
    name: 'tickets',
    ...cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' })),
  })
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
