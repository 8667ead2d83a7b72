/**
 * Debezium change events → row changes.
 *
 * Record shapes accepted (value; the key is the same with the key struct instead of the envelope):
 *   JSON with schemas  {"schema": {...}, "payload": {"before": {...}|null, "after": {...}|null,
 *                       "source": {..., "ts_ms", "lsn", "schema", "table"}, "op": "c|u|d|r", "ts_ms"}}
 *   JSON schemaless    {"before": ..., "after": ..., "source": ..., "op": ..., "ts_ms": ...}
 *   Avro               Confluent wire format (see serde/wire.ts) of the Debezium `Envelope` record
 *   null value         the tombstone Debezium writes after each delete so compaction can drop the key
 *
 * A primary-key change arrives as delete(old key) + tombstone(old key) + create(new key); decoding
 * each record on its own gives exactly that. A tombstone decodes to a delete: after a delete it is a
 * no-op downstream (the key is already gone); after compaction it is the only trace of the delete,
 * so it must delete. Columns are taken as they come, so added or removed columns need no config.
 */
import { isUtf8 } from 'node:buffer'
import type { EncodedRecord, Row, RowChange, SourcePosition } from './change-event.ts'
import { decodeFailed } from './decode-error.ts'
import { keyFromColumns, stableKey } from './keys.ts'
import { avroEnvelopeConverter, connectEnvelopeConverter, type RowConverter } from './semantic-types.ts'
import type { AvroWireDecoder } from '../serde/wire.ts'
import { UnavailableValueMatcher } from './unavailable.ts'

export type PayloadFormat = 'json' | 'avro'

export interface DebeziumDecoderOptions {
  /** How values are encoded. `json` accepts the envelope with and without the schema/payload wrapper. */
  readonly valueFormat: PayloadFormat
  /** How keys are encoded; defaults to `valueFormat`. `string` takes the key bytes as UTF-8 text. */
  readonly keyFormat?: PayloadFormat | 'string'
  /**
   * Build the entity key from these row columns instead of the record key (tables without a primary
   * key, or a business key). When set, the record key is ignored.
   */
  readonly keyColumns?: readonly string[]
  /** Required when either format is `avro` (created with `rawSchemas: true` for `semanticTypes: 'convert'`). */
  readonly avro?: AvroWireDecoder
  /**
   * `convert`: Debezium/Connect semantic types (Decimal, Date, Timestamp, MicroTimestamp, …) become
   * readable strings when the record carries its schema (JSON wrapper, Avro). Default `raw`.
   */
  readonly semanticTypes?: 'raw' | 'convert'
  /**
   * The connector's `unavailable.value.placeholder` (default `__debezium_unavailable_value`; `hex:…`
   * for bytes, as on the connector). Columns holding it are listed in `RowUpsert.unavailable` and
   * left unconverted; the table source restores their previous value (see src/cdc/unavailable.ts).
   */
  readonly unavailableValuePlaceholder?: string
}

const ENVELOPE_OPS: ReadonlySet<string> = new Set(['c', 'u', 'r', 'd'])
const UNSUPPORTED_OPS: Readonly<Record<string, string>> = {
  m: 'a logical decoding message (op=m) is not a row change; route it to another topic',
}

/** Decodes Debezium records of one table topic. Construct once per source; `decode` is synchronous. */
export class DebeziumDecoder {
  readonly #valueFormat: PayloadFormat
  readonly #keyFormat: PayloadFormat | 'string'
  readonly #keyColumns: readonly string[] | undefined
  readonly #avro: AvroWireDecoder | undefined
  readonly #convert: boolean
  readonly #avroConverters = new Map<unknown, RowConverter | undefined>()
  readonly #unavailable: UnavailableValueMatcher

  constructor(options: DebeziumDecoderOptions) {
    this.#unavailable = new UnavailableValueMatcher(options.unavailableValuePlaceholder)
    this.#convert = options.semanticTypes === 'convert'
    this.#valueFormat = options.valueFormat
    this.#keyFormat = options.keyFormat ?? options.valueFormat
    this.#keyColumns = options.keyColumns?.length ? options.keyColumns : undefined
    this.#avro = options.avro
    if ((this.#valueFormat === 'avro' || this.#keyFormat === 'avro') && !this.#avro) {
      throw new TypeError('DebeziumDecoder: an AvroWireDecoder is required for the avro format')
    }
    if (this.#convert && this.#valueFormat === 'avro' && !this.#avro?.keepsRawSchemas) {
      throw new TypeError(
        "DebeziumDecoder: semanticTypes 'convert' with Avro needs new AvroWireDecoder(registry, url, { rawSchemas: true })",
      )
    }
  }

  /** Loads the Avro writer schemas this batch needs (one registry request per unseen schema id). No-op for JSON. */
  async prepare(records: readonly EncodedRecord[]): Promise<void> {
    if (!this.#avro) return
    const buffers: (Buffer | null)[] = []
    for (const r of records) {
      if (this.#valueFormat === 'avro') buffers.push(r.value)
      if (this.#keyFormat === 'avro') buffers.push(r.key)
    }
    await this.#avro.prepare(buffers)
  }

  /** One record → one row change. Throws RS_DECODE_FAILED (dead-letter it) for anything malformed. */
  decode(record: EncodedRecord): RowChange {
    const keyStruct = this.#keyColumns ? undefined : decodeKey(record, this.#keyFormat, this.#avro)

    if (record.value === null) {
      const key = this.#keyColumns ? undefined : stableKey(keyStruct)
      if (key === undefined) {
        throw decodeFailed(
          record,
          this.#keyColumns
            ? 'a tombstone cannot be mapped to a key built from keyColumns: the row is gone'
            : 'tombstone with a null or empty key',
        )
      }
      return {
        kind: 'delete',
        op: 'tombstone',
        key,
        keyFields: asKeyFields(keyStruct),
        before: null,
        source: positionOf(record, undefined, false),
      }
    }

    const envelope = this.#decodeEnvelope(record)
    const rawOp = envelope.op
    if (typeof rawOp !== 'string') throw decodeFailed(record, 'not a Debezium envelope: field "op" is missing')
    // A truncate has no key and no rows: the whole table is emptied (the table source applies it).
    if (rawOp === 't') return { kind: 'truncate', op: 't', source: positionOf(record, envelope, false) }
    if (!ENVELOPE_OPS.has(rawOp)) throw decodeFailed(record, UNSUPPORTED_OPS[rawOp] ?? `unknown Debezium op "${rawOp}"`)
    const op = rawOp as 'c' | 'u' | 'r' | 'd'

    let before = rowOrNull(record, envelope.before, 'before')
    let after = rowOrNull(record, envelope.after, 'after')
    // Placeholders are found before conversion: a bytes placeholder would otherwise "convert" to a decimal.
    const unavailable = after === null || op === 'd' ? [] : this.#unavailable.columns(after)
    if (this.#convert) {
      const convert = this.#converter(record)
      if (convert) {
        if (before) before = convert(before)
        if (after) after = keepColumns(convert(after), after, unavailable)
      }
    }
    const source = positionOf(record, envelope, op === 'r')

    if (op === 'd') {
      const { key, keyFields } = this.#key(record, keyStruct, before)
      return { kind: 'delete', op, key, keyFields, before, source }
    }
    if (after === null) throw decodeFailed(record, `op=${op} without an "after" row`)
    const { key, keyFields } = this.#key(record, keyStruct, after)
    if (unavailable.length > 0) return { kind: 'upsert', op, key, keyFields, row: after, before, source, unavailable }
    return { kind: 'upsert', op, key, keyFields, row: after, before, source }
  }

  #converter(record: EncodedRecord): RowConverter | undefined {
    if (this.#valueFormat === 'json')
      return this.#jsonSchema === undefined ? undefined : connectEnvelopeConverter(this.#jsonSchema)
    const schema = (this.#avro as AvroWireDecoder).rawSchema(record.value as Buffer)
    if (schema === undefined) return undefined
    if (!this.#avroConverters.has(schema)) this.#avroConverters.set(schema, avroEnvelopeConverter(schema))
    return this.#avroConverters.get(schema)
  }

  /** The Connect schema of the JSON envelope being decoded (wrapper present), for semantic types. */
  #jsonSchema: unknown = undefined

  #decodeEnvelope(record: EncodedRecord): Record<string, unknown> {
    const value = record.value as Buffer
    let decoded: unknown
    if (this.#valueFormat === 'avro') {
      try {
        decoded = (this.#avro as AvroWireDecoder).decode(value)
      } catch (error) {
        throw decodeFailed(record, 'value is not valid Avro', error)
      }
    } else {
      let parsed = parseJson(record, value, 'value', 'never')
      decoded = unwrapSchema(parsed)
      if (isObject(decoded) && (hasInexactInteger(decoded.after) || hasInexactInteger(decoded.before))) {
        parsed = parseJson(record, value, 'value', 'always')
        decoded = unwrapSchema(parsed)
      }
      this.#jsonSchema = decoded !== parsed ? (parsed as { schema?: unknown }).schema : undefined
    }
    if (!isObject(decoded)) throw decodeFailed(record, `value is not a Debezium envelope (got ${describe(decoded)})`)
    return decoded
  }

  #key(record: EncodedRecord, keyStruct: unknown, row: Row | null): { key: string; keyFields: Row } {
    if (this.#keyColumns) {
      const fields = row === null ? undefined : keyFromColumns(row, this.#keyColumns)
      const key = stableKey(fields)
      if (fields === undefined || key === undefined) {
        throw decodeFailed(record, `key columns ${this.#keyColumns.join(', ')} are missing from the row`)
      }
      return { key, keyFields: fields }
    }
    const key = stableKey(keyStruct)
    if (key === undefined)
      throw decodeFailed(record, 'record has no key (a table without a primary key?); set keyColumns')
    return { key, keyFields: asKeyFields(keyStruct) }
  }
}

/** Decodes a record key in the given format to a key struct or scalar (undefined when the key is null). */
export function decodeKey(
  record: EncodedRecord,
  format: PayloadFormat | 'string',
  avro: AvroWireDecoder | undefined,
): unknown {
  if (record.key === null) return undefined
  if (format === 'string') {
    if (!isUtf8(record.key)) throw decodeFailed(record, `key is not valid UTF-8 (${record.key.length} bytes)`)
    return record.key.toString('utf8')
  }
  if (format === 'avro') {
    try {
      return (avro as AvroWireDecoder).decode(record.key)
    } catch (error) {
      throw decodeFailed(record, 'key is not valid Avro', error)
    }
  }
  return unwrapSchema(parseJson(record, record.key, 'key'))
}

/** `{"schema": …, "payload": …}` (Kafka Connect JsonConverter with schemas.enable=true) → payload. */
export function unwrapSchema(value: unknown): unknown {
  if (isObject(value) && 'payload' in value && 'schema' in value && !('op' in value)) {
    const keys = Object.keys(value)
    if (keys.length === 2) return value.payload
  }
  return value
}

// Integers beyond 2^53 (int64 ids) would silently lose precision as JS numbers, and two distinct
// 64-bit keys could collapse into one. Such values are read exactly, as bigint, from their source
// text by a reviver. The reviver costs ~4× a plain parse, and Debezium's envelope always has one
// huge integer (`ts_ns`) that nobody needs exactly, so: keys (small) take the exact path whenever
// they contain a long digit run; values are parsed plainly and re-parsed exactly only when a row
// (not the envelope) actually holds an integer beyond 2^53.
const LONG_DIGIT_RUN = /\d{16}/
const INTEGER_LITERAL = /^-?\d+$/

function exactIntegers(_key: string, value: unknown, context?: { source?: string }): unknown {
  if (
    typeof value === 'number' &&
    !Number.isSafeInteger(value) &&
    context?.source !== undefined &&
    INTEGER_LITERAL.test(context.source)
  )
    return BigInt(context.source)
  return value
}

/** Parses JSON; `exact`: `always` uses the exact-integer reviver, `auto` only if the text has a long digit run, `never` not at all. */
export function parseJson(
  record: EncodedRecord,
  bytes: Buffer,
  what: 'key' | 'value',
  exact: 'always' | 'auto' | 'never' = 'auto',
): unknown {
  // Invalid UTF-8 is the record's fault, never replaced silently with U+FFFD: it is dead-lettered.
  if (!isUtf8(bytes)) throw decodeFailed(record, `${what} is not valid UTF-8 (${bytes.length} bytes)`)
  try {
    const text = bytes.toString('utf8')
    const useReviver = exact === 'always' || (exact === 'auto' && LONG_DIGIT_RUN.test(text))
    return useReviver ? JSON.parse(text, exactIntegers as (key: string, value: unknown) => unknown) : JSON.parse(text)
  } catch (error) {
    throw decodeFailed(record, `${what} is not valid JSON`, error)
  }
}

/** True when a decoded row holds an integer that a JS number cannot represent exactly (top level and arrays). */
export function hasInexactInteger(row: unknown): boolean {
  if (row === null || typeof row !== 'object') return false
  for (const value of Array.isArray(row) ? row : Object.values(row)) {
    if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) return true
    if (Array.isArray(value) && hasInexactInteger(value)) return true
  }
  return false
}

function rowOrNull(record: EncodedRecord, value: unknown, field: string): Row | null {
  if (value === null || value === undefined) return null
  if (!isObject(value)) throw decodeFailed(record, `"${field}" is not a row (got ${describe(value)})`)
  return value
}

/** `converted` with these columns put back as they were in `raw`. */
function keepColumns(converted: Row, raw: Row, columns: readonly string[]): Row {
  if (columns.length === 0) return converted
  const out: Record<string, unknown> = { ...converted }
  for (const name of columns) out[name] = raw[name]
  return out
}

function asKeyFields(key: unknown): Row {
  if (isObject(key)) return key
  return key === undefined ? {} : { key }
}

function positionOf(
  record: EncodedRecord,
  envelope: Record<string, unknown> | undefined,
  snapshotRead: boolean,
): SourcePosition {
  const source = envelope && isObject(envelope.source) ? envelope.source : undefined
  const ts = numberOr(source?.ts_ms) ?? numberOr(envelope?.ts_ms) ?? Number(record.timestamp)
  let position: string | null = null
  let table: string | null = null
  let snapshot = snapshotRead
  if (source) {
    const lsn = source.lsn ?? source.change_lsn ?? source.commit_lsn
    if (lsn !== undefined && lsn !== null) position = String(lsn)
    else if (source.file !== undefined && source.file !== null && source.pos !== undefined)
      position = `${String(source.file)}:${String(source.pos)}`
    if (typeof source.table === 'string') {
      const schema =
        typeof source.schema === 'string' ? source.schema : typeof source.db === 'string' ? source.db : undefined
      table = schema ? `${schema}.${source.table}` : source.table
    }
    const flag = source.snapshot
    if (flag === true || (typeof flag === 'string' && flag !== 'false')) snapshot = true
  }
  const mark = snapshotRead ? snapshotMarkOf(source?.snapshot) : undefined
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestampMs: ts,
    position,
    table,
    snapshot,
    ...(mark === undefined ? {} : { snapshotMark: mark }),
  }
}

/** Debezium's `source.snapshot` of a read (`op=r`) → its place in the snapshot (see SourcePosition.snapshotMark). */
function snapshotMarkOf(flag: unknown): SourcePosition['snapshotMark'] {
  switch (flag) {
    case 'first':
    case 'first_in_data_collection':
      return 'first'
    case 'last':
    case 'last_in_data_collection':
      return 'last'
    case 'incremental':
      return 'incremental'
    default:
      return 'read'
  }
}

function numberOr(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value
  if (typeof value === 'bigint') return Number(value)
  return undefined
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return typeof value
}
