/**
 * What a decoder makes of a source record: the table row and what a CDC source knows beyond it. A leaf
 * module (no imports), so decoders (src/cdc/) can name it without depending on the topology graph.
 */
/** A decoded table row: `value: null` is a tombstone (the key is deleted). */
export interface DecodedRecord {
  readonly key: string
  readonly value: unknown
  /** The value's JSON bytes when the decoder already holds them (saves re-encoding for the store). */
  readonly json?: Buffer
  /**
   * Columns of `value` the source did not send (Debezium's unchanged-TOAST placeholder): the table
   * source replaces each with the column's value in the row it already holds for the key, and
   * dead-letters the record when it holds none. Never indexed as data.
   */
  readonly unavailable?: readonly string[]
  /**
   * When the change happened at its source (epoch ms), if the decoder knows (Debezium `source.ts_ms`):
   * the record's event time. Default: the row's `_source.timestampMs`, else the Kafka record timestamp.
   */
  readonly timestamp?: number
  /**
   * What a CDC decoder knows beyond the row (src/cdc/table-decoder.ts): a truncate of the whole table
   * (then `key` is '' and `value` null), or the record's place in a snapshot of the table. A CDC table
   * source deletes the rows a truncate or a completed snapshot says are gone (src/operators/table-source.ts).
   */
  readonly cdc?: CdcMark
}

/** A table-wide fact a CDC record carries (see {@link DecodedRecord.cdc}). */
export interface CdcMark {
  /** The table was truncated here: every row changed before this source position is gone. */
  readonly truncate?: {
    /** The source's position (a Postgres LSN, decimal), or null when the source names none. */
    readonly position: string | null
    readonly timestampMs: number
    /** `schema.table`, for messages and audit. */
    readonly table: string | null
  }
  /**
   * `first`, `read`, `last`: a read of a blocking snapshot (`first` starts the table's snapshot, `last`
   * completes it); `streamed`: a change streamed after the snapshot, which completes a snapshot still in
   * progress on its partition. A record without a mark neither starts nor completes anything.
   */
  readonly snapshot?: 'first' | 'read' | 'last' | 'streamed'
}
