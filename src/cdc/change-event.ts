/**
 * What every CDC decoder produces: one change to one row of a table, keyed by a stable string form
 * of the row's primary key, with the source position kept for lineage. A topic is the changelog of
 * a table (design point 1): per key, the latest change wins; `delete` removes the key.
 */

/** A decoded row: column name → value, exactly as the source encoded it (no coercion). */
export type Row = Readonly<Record<string, unknown>>

/**
 * How the change arrived.
 *   c / u / r / d — Debezium create, update, snapshot read, delete.
 *   tombstone     — a null value (after a Debezium delete, or a plain upsert topic's delete). Deleting
 *                   a key that is already gone is a no-op downstream, never an error.
 *   upsert        — a non-null value on a plain upsert topic.
 */
export type ChangeOp = 'c' | 'u' | 'r' | 'd' | 'tombstone' | 'upsert'

/** Where the change came from: the Kafka record, plus the database position when the source names one. */
export interface SourcePosition {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  /** Source change time: Debezium `source.ts_ms`, else the envelope `ts_ms`, else the Kafka record timestamp. */
  readonly timestampMs: number
  /** Database position: Postgres LSN, MySQL `binlog:pos`, … ; null when unknown (e.g. plain upsert topics). */
  readonly position: string | null
  /** `schema.table` (Postgres) or `db.table` (MySQL); null when unknown. */
  readonly table: string | null
  /** True for snapshot reads (`op=r` or `source.snapshot` true/last). */
  readonly snapshot: boolean
  /**
   * Where a snapshot read sits in its table's snapshot (Debezium's `source.snapshot`): `first` starts
   * it (`first`, `first_in_data_collection`), `last` completes it (`last`, `last_in_data_collection`),
   * `read` is any other read of a blocking snapshot, `incremental` a read of an incremental snapshot
   * (interleaved with streaming, so it neither starts nor completes anything). Absent for changes.
   */
  readonly snapshotMark?: 'first' | 'read' | 'last' | 'incremental'
}

export interface RowUpsert {
  readonly kind: 'upsert'
  readonly op: 'c' | 'u' | 'r' | 'upsert'
  /** Stable string form of the primary key (see `stableKey`). */
  readonly key: string
  readonly keyFields: Row
  /** The row after the change. */
  readonly row: Row
  /** The row before the change, when the source sent it (Debezium `before`, REPLICA IDENTITY FULL). */
  readonly before: Row | null
  readonly source: SourcePosition
  /**
   * Columns of `row` the source did not send (Debezium's unchanged-TOAST placeholder): their value in
   * `row` is not data; the previous value of the column stands. Absent or empty when every column came.
   */
  readonly unavailable?: readonly string[]
}

export interface RowDelete {
  readonly kind: 'delete'
  readonly op: 'd' | 'tombstone'
  readonly key: string
  readonly keyFields: Row
  /** The deleted row when the source sent it; null for tombstones. */
  readonly before: Row | null
  readonly source: SourcePosition
}

/** A `TRUNCATE` of the table (Debezium `op=t`, no key): every row changed before `source` is gone. */
export interface TableTruncate {
  readonly kind: 'truncate'
  readonly op: 't'
  readonly source: SourcePosition
}

export type RowChange = RowUpsert | RowDelete | TableTruncate

/** The parts of a Kafka record a decoder reads: structurally the runtime's `SourceRecord`. */
export interface EncodedRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly timestamp: bigint
  readonly key: Buffer | null
  readonly value: Buffer | null
  readonly headers?: ReadonlyMap<string, Buffer>
}
