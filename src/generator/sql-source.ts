/**
 * The support dataset written as SQL into a real PostgreSQL database, for Debezium to capture: the
 * demo's default source. The same seeded changes as `generate` (src/generator/generator.ts), applied
 * as statements instead of envelopes — customers and tickets are tables (inserts, updates, deletes,
 * primary-key changes as `UPDATE … SET id`), products stay a compacted metadata topic (plain upserts
 * produced to Kafka, as the topology reads them), and the dataset's malformed records are produced to
 * the tickets topic as they are, so the dead-letter path still shows.
 *
 *   prepareSqlSource   the database (created if missing), fresh `customers` and `tickets` tables with
 *                      REPLICA IDENTITY DEFAULT (unchanged TOAST bodies arrive as placeholders, which
 *                      ragstream restores), and the connectors, slots and publications of earlier runs
 *                      of the same base dropped
 *   generateSql        backfill (rows inserted before the connector starts: its snapshot reads them),
 *                      the connector registered through Connect's REST API, then a trickle at `rate`
 */
import { Producer } from '@platformatic/kafka'
import pg from 'pg'
import { ConnectClient, CONNECTOR_FILES, connectorDefinition, postgresConnectorVars } from '../cdc/connect.ts'
import { RagstreamError, ServiceUnavailableError } from '../errors.ts'
import type { GenerateProgress } from './generator.ts'
import type { Row } from './debezium-envelope.ts'
import { SupportDataset, type GeneratedRecord } from './support-dataset.ts'

export interface SqlSourceOptions {
  /** The database Debezium captures, e.g. RAGSTREAM_SOURCE_POSTGRES_URL with its own database name. */
  readonly sourceUrl: string
  readonly connectUrl: string
  readonly brokers: readonly string[]
  /** Topic prefix (Debezium `topic.prefix`), e.g. `demo-support-copilot.r1a2b3`. */
  readonly server: string
  /** Connectors, slots and publications whose name starts with this and that are not `server`'s are dropped. */
  readonly base: string
  readonly seed: number
  readonly backfill: number
  readonly rate: number
  readonly changes?: number
  readonly malformedRate?: number
  /** Partitions of the topics Connect creates (when they do not exist yet). */
  readonly partitions: number
  readonly signal?: AbortSignal
  readonly onProgress?: (progress: GenerateProgress) => void
  /** Called once the connector runs (its snapshot started): the demo's "source is live" moment. */
  readonly onConnectorRunning?: () => void
}

const CUSTOMERS_DDL = `CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, email text, tenant text NOT NULL,
  tier text NOT NULL, region text NOT NULL, status text NOT NULL, classification text NOT NULL, updated_at bigint NOT NULL)`
const TICKETS_DDL = `CREATE TABLE tickets (id bigint PRIMARY KEY, customer_id bigint NOT NULL, product_sku text, subject text NOT NULL,
  body text NOT NULL, status text NOT NULL, priority int NOT NULL, updated_at bigint NOT NULL)`
const COLUMNS = {
  customers: ['id', 'name', 'email', 'tenant', 'tier', 'region', 'status', 'classification', 'updated_at'],
  tickets: ['id', 'customer_id', 'product_sku', 'subject', 'body', 'status', 'priority', 'updated_at'],
} as const
type Table = keyof typeof COLUMNS

/** Replication slot and publication names: lower-case letters, digits and underscores. */
export function slotName(server: string): string {
  return server.toLowerCase().replace(/[^a-z0-9_]/g, '_')
}

/**
 * Removes a run's connector, then its replication slot (which would otherwise keep WAL forever) and
 * publication. The tables and topics stay, for inspection; the next run of the base replaces them.
 */
export async function dropSqlSource(o: Pick<SqlSourceOptions, 'sourceUrl' | 'connectUrl' | 'server'>): Promise<void> {
  await new ConnectClient(o.connectUrl).remove(o.server)
  const db = await connect(o.sourceUrl)
  try {
    const slot = slotName(o.server)
    for (let i = 0; i < 60; i++) {
      const left = await db.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [
        slot,
      ])
      if (left.rowCount === 0) break
      if (!left.rows[0].active) await db.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => {})
      else await new Promise((resolve) => setTimeout(resolve, 250))
    }
    await db.query(`DROP PUBLICATION IF EXISTS "${slot}"`)
  } finally {
    await db.end().catch(() => {})
  }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'ragstream-sql-source' })
  try {
    await client.connect()
  } catch (error) {
    throw new ServiceUnavailableError(
      'the CDC source PostgreSQL',
      url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@'),
      error,
    )
  }
  return client
}

/** Creates the database if missing, fresh tables, and drops what earlier runs of `base` left (connectors first). */
export async function prepareSqlSource(
  o: Pick<SqlSourceOptions, 'sourceUrl' | 'connectUrl' | 'base' | 'server'>,
): Promise<void> {
  const url = new URL(o.sourceUrl)
  const database = url.pathname.replace(/^\//, '')
  const admin = new URL(o.sourceUrl)
  admin.pathname = '/postgres'
  const server = await connect(admin.toString())
  try {
    const exists = await server.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])
    if (!exists.rowCount) await server.query(`CREATE DATABASE "${database.replace(/"/g, '""')}"`)
  } finally {
    await server.end().catch(() => {})
  }
  const connectClient = new ConnectClient(o.connectUrl)
  for (const name of await connectClient.list())
    if (name.startsWith(o.base) && name !== o.server) await connectClient.remove(name)
  const db = await connect(o.sourceUrl)
  try {
    const prefix = slotName(o.base)
    const slots = await db.query<{ slot_name: string; active: boolean }>(
      'SELECT slot_name, active FROM pg_replication_slots WHERE database = current_database() AND starts_with(slot_name, $1)',
      [prefix],
    )
    for (const slot of slots.rows) {
      // A removed connector's task lets go of its slot within a few seconds.
      for (let i = 0; i < 60; i++) {
        const dropped = await db
          .query(
            'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active',
            [slot.slot_name],
          )
          .then((r) => r.rowCount === 1)
          .catch(() => false)
        if (dropped) break
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    }
    const pubs = await db.query<{ pubname: string }>(
      'SELECT pubname FROM pg_publication WHERE starts_with(pubname, $1)',
      [prefix],
    )
    for (const p of pubs.rows) await db.query(`DROP PUBLICATION IF EXISTS "${p.pubname}"`)
    await db.query('DROP TABLE IF EXISTS tickets, customers')
    await db.query(CUSTOMERS_DDL)
    await db.query(TICKETS_DDL)
  } finally {
    await db.end().catch(() => {})
  }
}

interface Envelope {
  readonly op: 'c' | 'u' | 'd' | 'r'
  readonly before: Row | null
  readonly after: Row | null
}

const tableOf = (topic: string): Table | undefined =>
  topic.endsWith('.public.tickets') ? 'tickets' : topic.endsWith('.public.customers') ? 'customers' : undefined

function insert(table: Table, rows: readonly Row[]): { text: string; values: unknown[] } {
  const columns = COLUMNS[table]
  const values: unknown[] = []
  const tuples = rows.map((row) => `(${columns.map((c) => `$${values.push(row[c] ?? null)}`).join(', ')})`)
  return { text: `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}`, values }
}

function update(table: Table, id: unknown, row: Row): { text: string; values: unknown[] } {
  const columns = COLUMNS[table]
  const values: unknown[] = [id]
  const sets = columns.map((c) => `${c} = $${values.push(row[c] ?? null)}`)
  return { text: `UPDATE ${table} SET ${sets.join(', ')} WHERE id = $1`, values }
}

/**
 * The statements for one step of the dataset (one change: one or more records). A ticket deleted and
 * created again with another id in the same step is the dataset's primary-key change: one UPDATE of
 * the id, which Debezium turns into delete + tombstone + create as for any key change.
 */
export function statementsFor(records: readonly GeneratedRecord[]): {
  sql: { text: string; values: unknown[] }[]
  kafka: GeneratedRecord[]
} {
  const sql: { text: string; values: unknown[] }[] = []
  const kafka: GeneratedRecord[] = []
  const changes: { table: Table; change: Envelope }[] = []
  for (const record of records) {
    const table = tableOf(record.topic)
    if (table === undefined || record.malformed !== undefined) {
      kafka.push(record)
      continue
    }
    if (record.value === null) continue // tombstones: Debezium writes its own
    changes.push({ table, change: JSON.parse(record.value.toString()) as Envelope })
  }
  const [first, second] = changes
  if (
    changes.length === 2 &&
    first.table === 'tickets' &&
    second.table === 'tickets' &&
    first.change.op === 'd' &&
    second.change.op === 'c'
  ) {
    sql.push(update('tickets', first.change.before?.id, second.change.after!))
    return { sql, kafka }
  }
  for (const { table, change } of changes) {
    if (change.op === 'd') sql.push({ text: `DELETE FROM ${table} WHERE id = $1`, values: [change.before?.id] })
    else if (change.op === 'u') sql.push(update(table, change.after?.id, change.after!))
    else sql.push(insert(table, [change.after!]))
  }
  return { sql, kafka }
}

export async function generateSql(o: SqlSourceOptions): Promise<GenerateProgress> {
  const dataset = new SupportDataset({
    seed: o.seed,
    server: o.server,
    withSchema: false,
    malformedRate: o.malformedRate,
  })
  const producer = new Producer({
    clientId: `ragstream-sql-source-${o.server}`,
    bootstrapBrokers: [...o.brokers],
    idempotent: true,
  })
  const db = await connect(o.sourceUrl)
  const started = Date.now()
  const byKind: Record<string, number> = {}
  let records = 0
  let changes = 0
  let malformed = 0
  const progress = (phase: GenerateProgress['phase']): GenerateProgress => ({
    phase,
    records,
    changes,
    malformed,
    byKind: { ...byKind },
    elapsedMs: Date.now() - started,
  })
  const count = (generated: readonly GeneratedRecord[]): void => {
    for (const r of generated) {
      byKind[r.kind] = (byKind[r.kind] ?? 0) + 1
      if (r.malformed) malformed++
    }
    records += generated.length
  }
  const produce = async (generated: readonly GeneratedRecord[]): Promise<void> => {
    if (generated.length === 0) return
    await producer.send({
      messages: generated.map((r) => ({ topic: r.topic, key: r.key ?? undefined, value: r.value ?? undefined })),
    })
  }
  try {
    // Backfill: rows in the tables before the connector exists, so its initial snapshot (op=r) reads them.
    const rows: Record<Table, Row[]> = { customers: [], tickets: [] }
    const direct: GeneratedRecord[] = []
    const backfilled = [...dataset.backfill(o.backfill)]
    for (const record of backfilled) {
      const table = tableOf(record.topic)
      if (table === undefined) direct.push(record)
      else if (record.value !== null) rows[table].push((JSON.parse(record.value.toString()) as Envelope).after!)
    }
    await db.query('BEGIN')
    for (const table of ['customers', 'tickets'] as const)
      for (let i = 0; i < rows[table].length; i += 500) await db.query(insert(table, rows[table].slice(i, i + 500)))
    await db.query('COMMIT')
    await produce(direct)
    count(backfilled)

    const connect = new ConnectClient(o.connectUrl)
    const definition = connectorDefinition(
      CONNECTOR_FILES['json-schemaless'],
      postgresConnectorVars({
        name: o.server,
        sourceUrl: o.sourceUrl,
        topicPrefix: o.server,
        tables: ['public.tickets', 'public.customers'],
        slot: slotName(o.server),
        publication: slotName(o.server),
      }),
    )
    await connect.apply({
      name: definition.name,
      config: { ...definition.config, 'topic.creation.default.partitions': String(o.partitions) },
    })
    await connect.waitRunning(o.server, 120_000, o.signal)
    o.onConnectorRunning?.()
    o.onProgress?.(progress('backfill'))

    if (o.rate > 0) {
      const limit = o.changes ?? Number.POSITIVE_INFINITY
      const trickleStart = Date.now()
      let lastReport = Date.now()
      while (changes < limit && !o.signal?.aborted) {
        const step = [...dataset.step()]
        const { sql, kafka } = statementsFor(step)
        if (sql.length > 1) await db.query('BEGIN')
        for (const statement of sql) await db.query(statement)
        if (sql.length > 1) await db.query('COMMIT')
        await produce(kafka)
        count(step)
        changes++
        const wait = trickleStart + (changes / o.rate) * 1000 - Date.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
        if (Date.now() - lastReport > 1000) {
          lastReport = Date.now()
          o.onProgress?.(progress('trickle'))
        }
      }
    }
  } catch (error) {
    if (error instanceof RagstreamError) throw error
    throw new RagstreamError(
      'RS_SERVICE_UNAVAILABLE',
      `writing the demo's changes into ${o.server}'s source database failed`,
      {
        context: { service: 'postgres', address: new URL(o.sourceUrl).host },
        hint: 'is the CDC source up (npm run stack:up)? `ragstream demo --source kafka` writes envelopes to Kafka instead',
        cause: error,
      },
    )
  } finally {
    await producer.close().catch(() => {})
    await db.end().catch(() => {})
  }
  const done = progress('done')
  o.onProgress?.(done)
  return done
}

/** The source database of a demo base: RAGSTREAM_SOURCE_POSTGRES_URL's server, a database named after the base. */
export function sqlSourceEndpoints(
  env: NodeJS.ProcessEnv,
  base: string,
): { readonly sourceUrl: string; readonly connectUrl: string } {
  const url = new URL(
    env.RAGSTREAM_SOURCE_POSTGRES_URL?.trim() || 'postgres://postgres@127.0.0.1:5433/ragstream_source',
  )
  url.pathname = `/${slotName(base)}`
  return { sourceUrl: url.toString(), connectUrl: env.RAGSTREAM_CONNECT_URL?.trim() || 'http://127.0.0.1:8083' }
}
