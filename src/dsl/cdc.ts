/**
 * Plugs the CDC decoders of `src/cdc` (Debezium envelopes, plain upsert topics; JSON or Avro) into a
 * table source: the decoded row is the table value, `op=d` and tombstones delete, and Avro schema
 * loading runs once per batch before decoding.
 *
 * @example
 * ```ts
 * import { DebeziumDecoder } from '../src/cdc/debezium.ts'
 *
 * const tickets = builder.cdcTable<Ticket>('pg.public.tickets', {
 *   name: 'tickets',
 *   ...rowChangeDecoding(new DebeziumDecoder({ valueFormat: 'json' })),
 * })
 * ```
 */
import type { RowChange } from '../cdc/change-event.ts'
import type { SourceRecord } from '../runtime/task.ts'
import type { Decoder, DecoderPreparer } from '../topology/graph.ts'

/** What `DebeziumDecoder` and `UpsertDecoder` provide. */
export interface RowChangeDecoder {
  decode(record: SourceRecord): RowChange
  prepare?(records: readonly SourceRecord[]): Promise<void>
}

export function rowChangeDecoding(decoder: RowChangeDecoder): { readonly decode: Decoder; readonly prepare?: DecoderPreparer } {
  const decode: Decoder = (_key, _value, record) => {
    const change = decoder.decode(record)
    return { key: change.key, value: change.kind === 'delete' ? null : change.row }
  }
  return decoder.prepare === undefined ? { decode } : { decode, prepare: (records) => decoder.prepare!(records) }
}
