/**
 * Turns the record batches of one fetched partition into source records, keeping only what a
 * read_committed consumer may see.
 *
 * The broker already stops at the last stable offset, but it returns the batches of aborted
 * transactions below it together with a list of (producerId, firstOffset) of those transactions;
 * the client must drop them. This is the algorithm of Kafka's own consumer: walk the batches in
 * offset order; an aborted transaction's producer becomes "aborted" once its first offset is reached
 * and stays so until that producer's ABORT control marker. The client library filters too, but only
 * the last aborted transaction per producer and only when its marker is in the same response, so a
 * producer that aborted twice (a restarted processor reuses its transactional id) would leak records.
 *
 * Control batch record key (wire format): int16 version, int16 type (0 = ABORT, 1 = COMMIT).
 */
import type { RecordsBatch } from '@platformatic/kafka'
import type { SourceRecord } from './task.ts'

const TRANSACTIONAL = 0x10
const CONTROL = 0x20

export interface AbortedTransaction {
  readonly producerId: bigint
  readonly firstOffset: bigint
}

export interface CommittedRecords {
  readonly records: SourceRecord[]
  /** The next offset to fetch: past every batch seen, control markers and aborted data included. */
  readonly nextOffset: bigint
  /** Key, value and header bytes of the kept records. */
  readonly bytes: number
}

const NO_HEADERS: ReadonlyMap<string, Buffer> = new Map()

export function committedRecords(
  topic: string,
  partition: number,
  fromOffset: bigint,
  batches: readonly RecordsBatch[] | null | undefined,
  aborted: readonly AbortedTransaction[] | null | undefined,
): CommittedRecords {
  const records: SourceRecord[] = []
  let nextOffset = fromOffset
  let bytes = 0
  if (!batches || batches.length === 0) return { records, nextOffset, bytes }

  const pending = aborted && aborted.length > 0 ? [...aborted].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0)) : []
  let nextAborted = 0
  const abortedProducers = new Set<bigint>()

  for (const batch of batches) {
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta)
    if (lastOffset < fromOffset) continue
    while (nextAborted < pending.length && pending[nextAborted].firstOffset <= lastOffset) {
      abortedProducers.add(pending[nextAborted++].producerId)
    }
    if (batch.attributes & CONTROL) {
      const key = batch.records[0]?.key
      if (key && key.length >= 4 && key.readInt16BE(2) === 0) abortedProducers.delete(batch.producerId)
      nextOffset = lastOffset + 1n
      continue
    }
    if (batch.attributes & TRANSACTIONAL && abortedProducers.has(batch.producerId)) {
      nextOffset = lastOffset + 1n
      continue
    }
    for (const record of batch.records) {
      const offset = batch.firstOffset + BigInt(record.offsetDelta)
      if (offset < fromOffset) continue
      let headers = NO_HEADERS
      if (record.headers.length > 0) {
        const map = new Map<string, Buffer>()
        for (const [name, value] of record.headers) {
          if (name === null) continue
          map.set(name.toString(), value ?? Buffer.alloc(0))
          bytes += name.length + (value?.length ?? 0)
        }
        headers = map
      }
      bytes += (record.key?.length ?? 0) + (record.value?.length ?? 0)
      records.push({
        topic,
        partition,
        offset,
        timestamp: batch.firstTimestamp + record.timestampDelta,
        key: record.key,
        value: record.value,
        headers,
      })
    }
    nextOffset = lastOffset + 1n
  }
  return { records, nextOffset, bytes }
}
