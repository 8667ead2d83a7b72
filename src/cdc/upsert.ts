/**
 * Plain upsert topics: the record key names the row, the value is the whole row (JSON object or
 * wire-format Avro record), a null value deletes the key. What a compacted "latest state" topic, a
 * ksqlDB table or a Kafka Connect source without Debezium looks like.
 */
import type { EncodedRecord, RowDelete, RowUpsert, SourcePosition } from './change-event.ts'
import { decodeFailed } from './decode-error.ts'
import { decodeKey, hasInexactInteger, isObject, parseJson, unwrapSchema, type PayloadFormat } from './debezium.ts'
import { keyFromColumns, stableKey } from './keys.ts'
import type { AvroWireDecoder } from '../serde/wire.ts'

export interface UpsertDecoderOptions {
  readonly valueFormat: PayloadFormat
  /** Defaults to `string`: the key bytes are the key (UTF-8). */
  readonly keyFormat?: PayloadFormat | 'string'
  /** Build the entity key from these value columns instead of the record key (then null values cannot be mapped). */
  readonly keyColumns?: readonly string[]
  readonly avro?: AvroWireDecoder
}

export class UpsertDecoder {
  readonly #valueFormat: PayloadFormat
  readonly #keyFormat: PayloadFormat | 'string'
  readonly #keyColumns: readonly string[] | undefined
  readonly #avro: AvroWireDecoder | undefined

  constructor(options: UpsertDecoderOptions) {
    this.#valueFormat = options.valueFormat
    this.#keyFormat = options.keyFormat ?? 'string'
    this.#keyColumns = options.keyColumns?.length ? options.keyColumns : undefined
    this.#avro = options.avro
    if ((this.#valueFormat === 'avro' || this.#keyFormat === 'avro') && !this.#avro) {
      throw new TypeError('UpsertDecoder: an AvroWireDecoder is required for the avro format')
    }
  }

  async prepare(records: readonly EncodedRecord[]): Promise<void> {
    if (!this.#avro) return
    const buffers: (Buffer | null)[] = []
    for (const r of records) {
      if (this.#valueFormat === 'avro') buffers.push(r.value)
      if (this.#keyFormat === 'avro') buffers.push(r.key)
    }
    await this.#avro.prepare(buffers)
  }

  decode(record: EncodedRecord): RowUpsert | RowDelete {
    const source: SourcePosition = {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      timestampMs: Number(record.timestamp),
      position: null,
      table: null,
      snapshot: false,
    }
    if (record.value === null) {
      if (this.#keyColumns) throw decodeFailed(record, 'a null value cannot be mapped to a key built from keyColumns')
      const struct = decodeKey(record, this.#keyFormat, this.#avro)
      const key = stableKey(struct)
      if (key === undefined || key === '') throw decodeFailed(record, 'null value with a null or empty key')
      return {
        kind: 'delete',
        op: 'tombstone',
        key,
        keyFields: isObject(struct) ? struct : { key: struct },
        before: null,
        source,
      }
    }
    let row: unknown
    if (this.#valueFormat === 'avro') {
      try {
        row = (this.#avro as AvroWireDecoder).decode(record.value)
      } catch (error) {
        throw decodeFailed(record, 'value is not valid Avro', error)
      }
    } else {
      row = unwrapSchema(parseJson(record, record.value, 'value', 'never'))
      if (hasInexactInteger(row)) row = unwrapSchema(parseJson(record, record.value, 'value', 'always'))
    }
    if (!isObject(row)) throw decodeFailed(record, 'value is not a row (a JSON object or Avro record)')
    if (this.#keyColumns) {
      const fields = keyFromColumns(row, this.#keyColumns)
      const key = stableKey(fields)
      if (fields === undefined || key === undefined)
        throw decodeFailed(record, `key columns ${this.#keyColumns.join(', ')} are missing from the row`)
      return { kind: 'upsert', op: 'upsert', key, keyFields: fields, row, before: null, source }
    }
    const struct = decodeKey(record, this.#keyFormat, this.#avro)
    const key = stableKey(struct)
    if (key === undefined || key === '') throw decodeFailed(record, 'record has no key; set keyColumns')
    return {
      kind: 'upsert',
      op: 'upsert',
      key,
      keyFields: isObject(struct) ? struct : { key: struct },
      row,
      before: null,
      source,
    }
  }
}
