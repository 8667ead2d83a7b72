/**
 * Record packs: several small records of one internal repartition topic partition carried as one
 * Kafka record. A batch is one transaction and the runtime bounds it by records, so a join whose
 * every left row costs a subscription and a response record pays that per-record and per-batch cost
 * three times per row; packed, its internal hops cost a fraction of a record each. The compiled
 * topology unpacks a pack into its items (`TopicEntry.unpack`) and handles, and dead-letters, each
 * item as the record it stands for.
 */
import { RagstreamError } from '../errors.ts'
import { decodeOrigin, encodeOrigin } from '../runtime/origin.ts'
import type { RecordOrigin, SinkRecord, SourceRecord } from '../runtime/task.ts'

/* Pack record: key = null, partition = the items' partition, value =
 *   0x04 (version) | u32 count | count × (u32 key length | key | u32 value length (0xffffffff = null) | value
 *                                         | u32 origin length (0 = none) | origin (src/runtime/origin.ts)
 *                                         | i64 event time (epoch ms; -1 = none: the pack's timestamp)
 *                                         | i64 append time (epoch ms; -1 = unknown; -2 = the origin's timestamp))
 * Items keep their produce order; each carries the origin of the record that produced it, so a dead
 * letter further down names the source change, its own event time (the pack's Kafka timestamp is
 * one for all) and when that change was appended to its source topic. Versions 0x03 (no append
 * times: the origin's timestamp), 0x02 (no event times either: the pack's timestamp), 0x01 (no
 * origins either) and a value starting with `{` (one record in the earlier JSON format, read as
 * itself) are still read: records in flight across an upgrade. */
const PACK_V1 = 0x01
const PACK_V2 = 0x02
const PACK_V3 = 0x03
const PACK_V4 = 0x04
const NO_TIME = -1n
const ORIGIN_TIME = -2n
const JSON_START = 0x7b
const NULL_LENGTH = 0xffffffff

export function packRecords(items: readonly SinkRecord[]): Buffer {
  const origins = items.map((item) => (item.source === undefined ? null : encodeOrigin(item.source)))
  let size = 5
  for (let i = 0; i < items.length; i++)
    size += 28 + (items[i].key?.length ?? 0) + (items[i].value?.length ?? 0) + (origins[i]?.length ?? 0)
  const bytes = Buffer.allocUnsafe(size)
  bytes[0] = PACK_V4
  let at = bytes.writeUInt32BE(items.length, 1)
  for (let i = 0; i < items.length; i++) {
    const { key, value } = items[i]
    at = bytes.writeUInt32BE(key?.length ?? 0, at)
    if (key !== null) at += key.copy(bytes, at)
    at = bytes.writeUInt32BE(value === null ? NULL_LENGTH : value.length, at)
    if (value !== null) at += value.copy(bytes, at)
    const origin = origins[i]
    at = bytes.writeUInt32BE(origin?.length ?? 0, at)
    if (origin !== null) at += origin.copy(bytes, at)
    at = bytes.writeBigInt64BE(items[i].timestamp ?? NO_TIME, at)
    const appendedAt = items[i].appendedAt
    at = bytes.writeBigInt64BE(
      appendedAt === undefined ? ORIGIN_TIME : appendedAt < 0 ? NO_TIME : BigInt(appendedAt),
      at,
    )
  }
  return bytes
}

/**
 * The pack's items as records of their own: the pack's topic, partition, offset, timestamp and
 * headers; each item's key, value and origin.
 */
export function unpackRecords(record: SourceRecord): readonly SourceRecord[] {
  const bytes = record.value
  if (bytes === null || bytes.length === 0)
    throw new RagstreamError('RS_DECODE_FAILED', `a record of ${record.topic} needs a value`)
  if (bytes[0] === JSON_START) return [record]
  const version = bytes[0]
  if (version < PACK_V1 || version > PACK_V4 || bytes.length < 5)
    throw new RagstreamError('RS_DECODE_FAILED', `not a record pack (version byte ${bytes[0]})`)
  const truncated = (): RagstreamError => new RagstreamError('RS_DECODE_FAILED', 'the record pack is truncated')
  const count = bytes.readUInt32BE(1)
  const items: SourceRecord[] = []
  let at = 5
  for (let n = 0; n < count; n++) {
    if (at + 8 > bytes.length) throw truncated()
    const keyLength = bytes.readUInt32BE(at)
    const key = bytes.subarray(at + 4, at + 4 + keyLength)
    at += 4 + keyLength
    if (at + 4 > bytes.length) throw truncated()
    const valueLength = bytes.readUInt32BE(at)
    at += 4
    const value = valueLength === NULL_LENGTH ? null : bytes.subarray(at, at + valueLength)
    if (value !== null) at += valueLength
    let origin: RecordOrigin | undefined
    let timestamp = record.timestamp
    if (version >= PACK_V2) {
      if (at + 4 > bytes.length) throw truncated()
      const originLength = bytes.readUInt32BE(at)
      at += 4
      if (originLength > 0) origin = decodeOrigin(bytes.subarray(at, at + originLength))
      at += originLength
    }
    let appendedAt: number | undefined
    if (version >= PACK_V3) {
      if (at + 8 > bytes.length) throw truncated()
      const time = bytes.readBigInt64BE(at)
      if (time !== NO_TIME) timestamp = time
      at += 8
    }
    if (version >= PACK_V4) {
      if (at + 8 > bytes.length) throw truncated()
      const time = bytes.readBigInt64BE(at)
      if (time !== ORIGIN_TIME) appendedAt = time < 0n ? -1 : Number(time)
      at += 8
    }
    if (at > bytes.length) throw truncated()
    items.push({
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      timestamp,
      headers: record.headers,
      key,
      value,
      ...(origin !== undefined ? { origin } : {}),
      ...(appendedAt !== undefined ? { appendedAt } : {}),
    })
  }
  return items
}

/**
 * Bytes of items a pack holds at most: a pack of large right rows must not become a record the broker
 * refuses (max.message.bytes, 1 MiB by default) where its items, sent one by one, would pass.
 */
export const PACK_MAX_BYTES = 256 * 1024
/** An item's origin, as packTopic counts it (a topic name and a short key); exact size does not matter there. */
const ORIGIN_BYTES = 96

/**
 * Replaces, in place, the records of `topic` in `out` with packs of at most `perPack` items and about
 * `maxBytes` of keys and values (an item larger than that is a pack of its own) per partition, in
 * their order; other records keep theirs.
 */
export function packTopic(out: SinkRecord[], topic: string, perPack: number, maxBytes = PACK_MAX_BYTES): void {
  let byPartition: Map<number, SinkRecord[]> | undefined
  let kept = 0
  for (let i = 0; i < out.length; i++) {
    const record = out[i]
    if (record.topic !== topic) {
      out[kept++] = record
      continue
    }
    byPartition ??= new Map()
    const items = byPartition.get(record.partition)
    if (items === undefined) byPartition.set(record.partition, [record])
    else items.push(record)
  }
  if (byPartition === undefined) return
  out.length = kept
  for (const [partition, items] of byPartition) {
    let pack: SinkRecord[] = []
    let bytes = 0
    for (const item of items) {
      const n = (item.key?.length ?? 0) + (item.value?.length ?? 0) + (item.source === undefined ? 0 : ORIGIN_BYTES)
      if (pack.length === perPack || (pack.length > 0 && bytes + n > maxBytes)) {
        out.push(packOf(topic, partition, pack))
        pack = []
        bytes = 0
      }
      pack.push(item)
      bytes += n
    }
    if (pack.length > 0) out.push(packOf(topic, partition, pack))
  }
}

/** A pack's own Kafka timestamp: its latest item's event time (each item carries its own inside). */
function packOf(topic: string, partition: number, items: readonly SinkRecord[]): SinkRecord {
  let latest: bigint | undefined
  for (const item of items)
    if (item.timestamp !== undefined && (latest === undefined || item.timestamp > latest)) latest = item.timestamp
  return {
    topic,
    partition,
    key: null,
    value: packRecords(items),
    ...(latest !== undefined ? { timestamp: latest } : {}),
  }
}
