/**
 * Encodes row changes the way Debezium's PostgreSQL connector does with the JsonConverter:
 *
 *   key   {"id": 42}                                   (schemas.enable=false)
 *         {"schema": {struct …Key}, "payload": {"id": 42}}   (schemas.enable=true)
 *   value {"before": row|null, "after": row|null, "source": {…, "lsn", "ts_ms", "table"}, "op": "c|u|d|r", "ts_ms"}
 *         or the same inside {"schema": …, "payload": …}
 *   a delete is followed by a tombstone: same key, null value (so compaction can drop the key).
 */
export type ColumnType = 'int32' | 'int64' | 'string' | 'boolean'

export interface ColumnSpec {
  readonly name: string
  readonly type: ColumnType
  readonly optional: boolean
}

export interface TableSpec {
  /** Logical server name (topic prefix), e.g. `support`. */
  readonly server: string
  readonly schema: string
  readonly table: string
  readonly columns: readonly ColumnSpec[]
  readonly key: readonly string[]
}

export type Row = Readonly<Record<string, string | number | boolean | null>>

export interface RowChange {
  readonly op: 'c' | 'u' | 'd' | 'r'
  readonly before: Row | null
  readonly after: Row | null
}

export interface EncodedChange {
  readonly key: Buffer
  readonly value: Buffer | null
}

export interface EnvelopeOptions {
  /** Include the Connect `schema` next to each `payload` (JsonConverter schemas.enable=true). */
  readonly withSchema: boolean
  readonly tsMs: number
  readonly lsn: number
  readonly txId: number
}

export function topicOf(spec: TableSpec): string {
  return `${spec.server}.${spec.schema}.${spec.table}`
}

function struct(
  name: string,
  columns: readonly ColumnSpec[],
  optional: boolean,
  field?: string,
): Record<string, unknown> {
  return {
    type: 'struct',
    fields: columns.map((c) => ({ type: c.type, optional: c.optional, field: c.name })),
    optional,
    name,
    ...(field ? { field } : {}),
  }
}

function wrap(withSchema: boolean, schema: () => unknown, payload: unknown): Buffer {
  return Buffer.from(JSON.stringify(withSchema ? { schema: schema(), payload } : payload))
}

function keyOf(spec: TableSpec, row: Row): Record<string, unknown> {
  return Object.fromEntries(spec.key.map((k) => [k, row[k]]))
}

/** The Debezium records for one change: one record, or two for a delete (envelope + tombstone). */
export function encodeChange(spec: TableSpec, change: RowChange, options: EnvelopeOptions): EncodedChange[] {
  const row = change.after ?? change.before
  if (!row) throw new Error(`change on ${spec.table} has neither before nor after`)
  const prefix = `${spec.server}.${spec.schema}.${spec.table}`
  const keyColumns = spec.columns.filter((c) => spec.key.includes(c.name))
  const key = wrap(options.withSchema, () => struct(`${prefix}.Key`, keyColumns, false), keyOf(spec, row))
  const source = {
    version: '2.7.3.Final',
    connector: 'postgresql',
    name: spec.server,
    ts_ms: options.tsMs,
    snapshot: change.op === 'r' ? 'true' : 'false',
    db: 'support',
    sequence: `[null,"${options.lsn}"]`,
    schema: spec.schema,
    table: spec.table,
    txId: options.txId,
    lsn: options.lsn,
    xmin: null,
  }
  const payload = {
    before: change.before,
    after: change.after,
    source,
    op: change.op,
    ts_ms: options.tsMs + 3,
    transaction: null,
  }
  const value = wrap(
    options.withSchema,
    () => ({
      type: 'struct',
      fields: [
        struct(`${prefix}.Value`, spec.columns, true, 'before'),
        struct(`${prefix}.Value`, spec.columns, true, 'after'),
        {
          type: 'struct',
          optional: false,
          name: 'io.debezium.connector.postgresql.Source',
          field: 'source',
          fields: [
            { type: 'string', optional: false, field: 'version' },
            { type: 'string', optional: false, field: 'connector' },
            { type: 'string', optional: false, field: 'name' },
            { type: 'int64', optional: false, field: 'ts_ms' },
            { type: 'string', optional: true, field: 'snapshot' },
            { type: 'string', optional: false, field: 'db' },
            { type: 'string', optional: true, field: 'sequence' },
            { type: 'string', optional: false, field: 'schema' },
            { type: 'string', optional: false, field: 'table' },
            { type: 'int64', optional: true, field: 'txId' },
            { type: 'int64', optional: true, field: 'lsn' },
            { type: 'int64', optional: true, field: 'xmin' },
          ],
        },
        { type: 'string', optional: false, field: 'op' },
        { type: 'int64', optional: true, field: 'ts_ms' },
      ],
      optional: false,
      name: `${prefix}.Envelope`,
    }),
    payload,
  )
  return change.op === 'd'
    ? [
        { key, value },
        { key, value: null },
      ]
    : [{ key, value }]
}
