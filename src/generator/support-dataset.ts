/**
 * The support-copilot domain as a seeded simulation: customers and tickets are Postgres tables
 * captured by Debezium; products are a compacted metadata topic (plain upserts). `step()` returns the
 * next change with the realistic mix a CDC stream shows: new and edited tickets, status changes,
 * deletes (with tombstones), primary-key changes, customer reclassifications and region moves,
 * product updates, and a few malformed records.
 */
import { SeededRandom } from './random.ts'
import { personName, email, ticketText } from './texts.ts'
import {
  encodeChange,
  topicOf,
  type EnvelopeOptions,
  type Row,
  type RowChange,
  type TableSpec,
} from './debezium-envelope.ts'

export const CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const
export const REGIONS = ['eu', 'us', 'apac'] as const
const TIERS = ['free', 'pro', 'enterprise'] as const
const TENANTS = ['acme', 'globex', 'initech', 'umbrella'] as const
const STATUSES = ['open', 'pending', 'solved', 'closed'] as const
const PRODUCT_NAMES = ['Ledger', 'Beacon', 'Atlas', 'Quill', 'Harbor', 'Pulse', 'Relay', 'Summit', 'Orbit', 'Forge']
const CATEGORIES = ['billing', 'analytics', 'identity', 'integrations', 'mobile']

export function supportTables(server: string): { customers: TableSpec; tickets: TableSpec; productsTopic: string } {
  return {
    customers: {
      server,
      schema: 'public',
      table: 'customers',
      key: ['id'],
      columns: [
        { name: 'id', type: 'int64', optional: false },
        { name: 'name', type: 'string', optional: false },
        { name: 'email', type: 'string', optional: true },
        { name: 'tenant', type: 'string', optional: false },
        { name: 'tier', type: 'string', optional: false },
        { name: 'region', type: 'string', optional: false },
        { name: 'status', type: 'string', optional: false },
        { name: 'classification', type: 'string', optional: false },
        { name: 'updated_at', type: 'int64', optional: false },
      ],
    },
    tickets: {
      server,
      schema: 'public',
      table: 'tickets',
      key: ['id'],
      columns: [
        { name: 'id', type: 'int64', optional: false },
        { name: 'customer_id', type: 'int64', optional: false },
        { name: 'product_sku', type: 'string', optional: true },
        { name: 'subject', type: 'string', optional: false },
        { name: 'body', type: 'string', optional: false },
        { name: 'status', type: 'string', optional: false },
        { name: 'priority', type: 'int32', optional: false },
        { name: 'updated_at', type: 'int64', optional: false },
      ],
    },
    productsTopic: `${server}.products`,
  }
}

/** A record ready to produce. `malformed` names what is wrong with it (for the generator's own counts). */
export interface GeneratedRecord {
  readonly topic: string
  readonly key: Buffer | null
  readonly value: Buffer | null
  readonly kind: string
  readonly malformed?: string
}

export interface DatasetOptions {
  readonly seed: number
  /** Topic prefix (Debezium logical server name). */
  readonly server: string
  /** JsonConverter schemas.enable. */
  readonly withSchema: boolean
  /** Share of malformed records in the trickle (default 0.01). */
  readonly malformedRate?: number
  /** Clock for ts_ms; injectable so a fixed clock makes output byte-for-byte reproducible. */
  readonly now?: () => number
}

const TRICKLE_MIX = {
  ticketCreate: 24,
  ticketEdit: 22,
  ticketStatus: 14,
  ticketDelete: 5,
  ticketKeyChange: 2,
  customerCreate: 5,
  customerTier: 5,
  customerReclassify: 6,
  customerRegionMove: 5,
  customerDelete: 2,
  productUpdate: 9,
} as const

export class SupportDataset {
  readonly tables: ReturnType<typeof supportTables>
  readonly #rng: SeededRandom
  readonly #options: DatasetOptions
  readonly #now: () => number
  readonly #customers = new Map<number, Row>()
  readonly #tickets = new Map<number, Row>()
  readonly #products = new Map<string, Row>()
  #nextCustomer = 1
  #nextTicket = 1
  #lsn = 24_000_000
  #txId = 500

  constructor(options: DatasetOptions) {
    this.#options = options
    this.#rng = new SeededRandom(options.seed)
    this.#now = options.now ?? Date.now
    this.tables = supportTables(options.server)
  }

  get counts(): { customers: number; tickets: number; products: number } {
    return { customers: this.#customers.size, tickets: this.#tickets.size, products: this.#products.size }
  }

  /**
   * Snapshot of the initial tables: products, then customers (default one per 10 tickets, at least 5;
   * fewer make hot foreign keys, as bench/scale.ts wants), then `tickets` tickets (op=r).
   */
  *backfill(tickets: number, customerCount?: number): Generator<GeneratedRecord> {
    for (let i = 0; i < PRODUCT_NAMES.length; i++) yield this.#upsertProduct(`SKU-${100 + i}`, PRODUCT_NAMES[i])
    const customers = customerCount ?? Math.max(5, Math.ceil(tickets / 10))
    for (let i = 0; i < customers; i++) yield* this.#customerChange('r', this.#newCustomer())
    for (let i = 0; i < tickets; i++) yield* this.#ticketChange('r', null, this.#newTicket())
  }

  /** The next live change (may be two or four records: deletes carry tombstones, key changes both). */
  *step(): Generator<GeneratedRecord> {
    const rng = this.#rng
    if (rng.chance(this.#options.malformedRate ?? 0.01)) {
      yield this.#malformed()
      return
    }
    const kind = this.#customers.size === 0 || this.#tickets.size === 0 ? 'ticketCreate' : rng.weighted(TRICKLE_MIX)
    switch (kind) {
      case 'ticketCreate':
        yield* this.#ticketChange('c', null, this.#newTicket())
        return
      case 'ticketEdit': {
        const before = this.#pickTicket()
        const customer = this.#customers.get(Number(before.customer_id))
        const text = ticketText(rng, String(customer?.name ?? 'Customer'), String(before.product_sku))
        const extra = `\n\nUpdate: ${text.body.split('\n\n')[0]}`
        yield* this.#ticketChange('u', before, { ...before, body: `${before.body}${extra}`, updated_at: this.#now() })
        return
      }
      case 'ticketStatus': {
        const before = this.#pickTicket()
        yield* this.#ticketChange('u', before, { ...before, status: rng.pick(STATUSES), updated_at: this.#now() })
        return
      }
      case 'ticketDelete':
        yield* this.#ticketChange('d', this.#pickTicket(), null)
        return
      case 'ticketKeyChange': {
        // Debezium emits a primary-key update as delete + tombstone of the old key, then create of the new.
        const before = this.#pickTicket()
        yield* this.#ticketChange('d', before, null)
        yield* this.#ticketChange('c', null, { ...before, id: this.#nextTicket++, updated_at: this.#now() })
        return
      }
      case 'customerCreate':
        yield* this.#customerChange('c', this.#newCustomer())
        return
      case 'customerTier':
        yield* this.#customerUpdate({ tier: rng.pick(TIERS) })
        return
      case 'customerReclassify':
        yield* this.#customerUpdate({ classification: rng.pick(CLASSIFICATIONS) })
        return
      case 'customerRegionMove':
        yield* this.#customerUpdate({ region: rng.pick(REGIONS) })
        return
      case 'customerDelete': {
        const before = this.#pickCustomer()
        yield* this.#encode(this.tables.customers, { op: 'd', before, after: null }, 'customerDelete')
        this.#customers.delete(Number(before.id))
        return
      }
      case 'productUpdate': {
        const sku = rng.pick([...this.#products.keys()])
        yield this.#upsertProduct(sku, String(this.#products.get(sku)?.name))
        return
      }
    }
  }

  #newCustomer(): Row {
    const name = personName(this.#rng)
    return {
      id: this.#nextCustomer++,
      name,
      email: email(this.#rng, name),
      tenant: this.#rng.pick(TENANTS),
      tier: this.#rng.pick(TIERS),
      region: this.#rng.pick(REGIONS),
      status: 'active',
      classification: this.#rng.weighted({ public: 2, internal: 5, confidential: 2, restricted: 1 }),
      updated_at: this.#now(),
    }
  }

  #newTicket(): Row {
    const customer = this.#pickCustomer()
    const sku = this.#rng.pick([...this.#products.keys()])
    const text = ticketText(this.#rng, String(customer.name), String(this.#products.get(sku)?.name ?? sku))
    return {
      id: this.#nextTicket++,
      customer_id: Number(customer.id),
      product_sku: sku,
      subject: text.subject,
      body: text.body,
      status: 'open',
      priority: this.#rng.int(1, 4),
      updated_at: this.#now(),
    }
  }

  #pickCustomer(): Row {
    return this.#rng.pick([...this.#customers.values()])
  }

  #pickTicket(): Row {
    return this.#rng.pick([...this.#tickets.values()])
  }

  *#customerUpdate(patch: Partial<Record<string, string>>): Generator<GeneratedRecord> {
    const before = this.#pickCustomer()
    yield* this.#customerChange('u', { ...before, ...patch, updated_at: this.#now() }, before)
  }

  *#customerChange(op: 'c' | 'u' | 'r', after: Row, before: Row | null = null): Generator<GeneratedRecord> {
    this.#customers.set(Number(after.id), after)
    yield* this.#encode(this.tables.customers, { op, before, after }, op === 'u' ? 'customerUpdate' : 'customerCreate')
  }

  *#ticketChange(op: RowChange['op'], before: Row | null, after: Row | null): Generator<GeneratedRecord> {
    if (after) this.#tickets.set(Number(after.id), after)
    else if (before) this.#tickets.delete(Number(before.id))
    yield* this.#encode(this.tables.tickets, { op, before, after }, `ticket:${op}`)
  }

  *#encode(spec: TableSpec, change: RowChange, kind: string): Generator<GeneratedRecord> {
    const options: EnvelopeOptions = {
      withSchema: this.#options.withSchema,
      tsMs: this.#now(),
      lsn: (this.#lsn += this.#rng.int(8, 400)),
      txId: this.#txId++,
    }
    for (const record of encodeChange(spec, change, options)) {
      yield {
        topic: topicOf(spec),
        key: record.key,
        value: record.value,
        kind: record.value === null ? 'tombstone' : kind,
      }
    }
  }

  #upsertProduct(sku: string, name: string): GeneratedRecord {
    const row = {
      sku,
      name,
      category: this.#rng.pick(CATEGORIES),
      version: Number(this.#products.get(sku)?.version ?? 0) + 1,
    }
    this.#products.set(sku, row)
    return {
      topic: this.tables.productsTopic,
      key: Buffer.from(sku),
      value: Buffer.from(JSON.stringify(row)),
      kind: 'product',
    }
  }

  #malformed(): GeneratedRecord {
    const topic = topicOf(this.tables.tickets)
    const key = Buffer.from(JSON.stringify({ id: this.#rng.int(1, this.#nextTicket) }))
    const flavour = this.#rng.pick(['truncated-json', 'not-json', 'missing-op', 'wrong-type'] as const)
    const value =
      flavour === 'truncated-json'
        ? Buffer.from('{"before":null,"after":{"id":1,"body":"cut')
        : flavour === 'not-json'
          ? Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00])
          : flavour === 'missing-op'
            ? Buffer.from(JSON.stringify({ before: null, after: { id: 1 }, source: {} }))
            : Buffer.from(JSON.stringify([1, 2, 3]))
    return { topic, key, value, kind: 'malformed', malformed: flavour }
  }
}
