/**
 * Adapter from the CDC decoders to a table source: `decode(key, value, record)` → `{ key, value }`
 * with `value: null` for deletes, and `prepare(records)` to run once per batch before decoding (Avro
 * schema loads). Each upserted row carries its source position under `_source` (configurable), so
 * the chunk stage downstream can fill the chunk events' lineage after joins and maps. Rows are made
 * JSON-safe for the table's store: integers beyond 2^53 (bigint) become decimal strings and bytes
 * become base64 strings.
 *
 * @example
 * const customers = cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }))
 * builder.cdcTable('dbserver1.inventory.customers', { name: 'customers', decode: customers.decode, prepare: customers.prepare })
 */
import type { CdcMark, DecodedRecord } from '../topology/decoded-record.ts'
import type { EncodedRecord, Row, RowChange } from './change-event.ts'

/** The lineage attached to each decoded row (JSON-safe: the offset is a decimal string). */
export interface RowLineage {
  readonly topic: string
  readonly partition: number
  readonly offset: string
  readonly timestampMs: number
  /**
   * When the change was appended to its source topic: the record's Kafka timestamp (LogAppendTime
   * topics: the broker's append; CreateTime: what the producer, e.g. Kafka Connect, stamped). Absent in
   * rows stored before it existed.
   */
  readonly appendedAtMs?: number
  readonly position: string | null
  readonly table: string | null
  readonly op: RowChange['op']
}

export const LINEAGE_FIELD = '_source'

const STREAMED: CdcMark = Object.freeze({ snapshot: 'streamed' })

/** When the row's last change happened at its source (`_source.timestampMs`), if it carries its lineage. */
export function rowChangeTime(row: unknown): number | undefined {
  if (row === null || typeof row !== 'object') return undefined
  const time = (row as { [LINEAGE_FIELD]?: { timestampMs?: unknown } })[LINEAGE_FIELD]?.timestampMs
  return isEventTime(time) ? time : undefined
}

/** When the row's last change was appended to its source topic (`_source.appendedAtMs`), if it carries it. */
export function rowAppendTime(row: unknown): number | undefined {
  if (row === null || typeof row !== 'object') return undefined
  const time = (row as { [LINEAGE_FIELD]?: { appendedAtMs?: unknown } })[LINEAGE_FIELD]?.appendedAtMs
  return isEventTime(time) ? time : undefined
}

/** A usable event time: epoch ms, a non-negative integer (Kafka refuses other record timestamps). */
export function isEventTime(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

export interface CdcTableDecoderOptions {
  /** Row field that receives the lineage; `false` to leave rows untouched. Default `_source`. */
  readonly lineageField?: string | false
}

export interface CdcDecoder {
  prepare(records: readonly EncodedRecord[]): Promise<void>
  decode(record: EncodedRecord): RowChange
}

export interface CdcTableDecoder {
  readonly decode: (key: Buffer | null, value: Buffer | null, record: EncodedRecord) => DecodedRecord
  readonly prepare: (records: readonly EncodedRecord[]) => Promise<void>
}

export function cdcTableDecoder(decoder: CdcDecoder, options: CdcTableDecoderOptions = {}): CdcTableDecoder {
  const field = options.lineageField ?? LINEAGE_FIELD
  return {
    // The runtime hands the same record; key/value are taken from it so a decoder sees exactly what Kafka delivered.
    decode: (_key, _value, record) => {
      const change = decoder.decode(record)
      const s = change.source
      if (change.kind === 'truncate') {
        const { position, timestampMs, table } = s
        return { key: '', value: null, timestamp: timestampMs, cdc: { truncate: { position, timestampMs, table } } }
      }
      if (change.kind === 'delete') return { key: change.key, value: null, timestamp: s.timestampMs, cdc: STREAMED }
      const row = jsonSafeRow(change.row)
      const mark = s.snapshotMark
      const extra: { unavailable?: readonly string[]; cdc?: CdcMark } = {}
      if (change.unavailable?.length) extra.unavailable = change.unavailable
      if (mark === undefined) extra.cdc = STREAMED
      else if (mark !== 'incremental') extra.cdc = { snapshot: mark }
      if (field === false) return { key: change.key, value: row, timestamp: s.timestampMs, ...extra }
      const lineage: RowLineage = {
        topic: s.topic,
        partition: s.partition,
        offset: s.offset.toString(),
        timestampMs: s.timestampMs,
        ...(isEventTime(Number(record.timestamp)) ? { appendedAtMs: Number(record.timestamp) } : {}),
        position: s.position,
        table: s.table,
        op: change.op,
      }
      row[field] = lineage
      return { key: change.key, value: row, timestamp: s.timestampMs, ...extra }
    },
    prepare: (records) => decoder.prepare(records),
  }
}

/** A plain-object copy of a row that JSON.stringify can always encode (avsc records become plain objects too). */
export function jsonSafeRow(row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const name of Object.keys(row)) out[name] = jsonSafe(row[name])
  return out
}

function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value === null || typeof value !== 'object') return value
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
  if (Array.isArray(value)) return value.map(jsonSafe)
  return jsonSafeRow(value as Row)
}
