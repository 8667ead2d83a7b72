/**
 * A record's origin: the external source record (topic, partition, offset, timestamp, key) whose
 * change led to it. A topology's later stages read internal repartition records (an FK join's
 * responses, an aggregate's group-by changes), so without it a dead letter there could only name an
 * internal topic's position; with it, a dead letter names the change that caused it (design point 8).
 * The compiled topology stamps every output with the origin of the record it came from, and an
 * internal record carries it across the topic: in the `ragstream.origin` header, or per item inside
 * a record pack (src/topology/record-pack.ts). The driver and the Kafka runtime carry it alike.
 */
import type { RecordOrigin } from './task.ts'

/** Header of an internal repartition record naming its origin (see the codec below). */
export const ORIGIN_HEADER = 'ragstream.origin'

/**
 * Keys up to this many bytes travel with the origin; a longer one (a hostile 100 KB key) travels as
 * null, so lineage never makes an internal record too large: the position still names the record.
 */
export const ORIGIN_KEY_MAX_BYTES = 1024

const NULL_KEY = 0xffffffff

/* Origin: u16 topic length | topic (UTF-8) | u32 partition | i64 offset | i64 timestamp |
 *         u32 key length (0xffffffff = null, or longer than ORIGIN_KEY_MAX_BYTES) | key */
export function encodeOrigin(origin: RecordOrigin): Buffer {
  const topic = Buffer.from(origin.topic, 'utf8')
  const key = origin.key !== null && origin.key.length <= ORIGIN_KEY_MAX_BYTES ? origin.key : null
  const bytes = Buffer.allocUnsafe(2 + topic.length + 4 + 8 + 8 + 4 + (key?.length ?? 0))
  let at = bytes.writeUInt16BE(topic.length, 0)
  at += topic.copy(bytes, at)
  at = bytes.writeUInt32BE(origin.partition, at)
  at = bytes.writeBigInt64BE(origin.offset, at)
  at = bytes.writeBigInt64BE(origin.timestamp, at)
  at = bytes.writeUInt32BE(key === null ? NULL_KEY : key.length, at)
  if (key !== null) key.copy(bytes, at)
  return bytes
}

/** The origin in `bytes`, or undefined when they are not one (lineage is best effort: a bad one never fails a record). */
export function decodeOrigin(bytes: Buffer): RecordOrigin | undefined {
  if (bytes.length < 2) return undefined
  const topicLength = bytes.readUInt16BE(0)
  let at = 2 + topicLength
  if (bytes.length < at + 24) return undefined
  const topic = bytes.toString('utf8', 2, at)
  const partition = bytes.readUInt32BE(at)
  const offset = bytes.readBigInt64BE(at + 4)
  const timestamp = bytes.readBigInt64BE(at + 12)
  const keyLength = bytes.readUInt32BE(at + 20)
  at += 24
  if (keyLength === NULL_KEY)
    return at === bytes.length ? { topic, partition, offset, timestamp, key: null } : undefined
  if (at + keyLength !== bytes.length) return undefined
  return { topic, partition, offset, timestamp, key: Buffer.from(bytes.subarray(at)) }
}

/** The origin an internal record's header names, if any. */
export function originHeader(headers: ReadonlyMap<string, Buffer>): RecordOrigin | undefined {
  const bytes = headers.get(ORIGIN_HEADER)
  return bytes === undefined ? undefined : decodeOrigin(bytes)
}

/**
 * Header of an internal repartition record whose change was appended at another time than its origin's
 * Kafka timestamp (a join took a joined row's later change): i64 epoch ms, -1 = unknown. Absent: the origin's.
 */
export const APPENDED_HEADER = 'ragstream.appended'

export function encodeAppendTime(appendedAt: number): Buffer {
  const bytes = Buffer.allocUnsafe(8)
  bytes.writeBigInt64BE(BigInt(appendedAt), 0)
  return bytes
}

/** The append time an internal record's header names, if any (best effort, as the origin). */
export function appendTimeHeader(headers: ReadonlyMap<string, Buffer>): number | undefined {
  const bytes = headers.get(APPENDED_HEADER)
  if (bytes === undefined || bytes.length !== 8) return undefined
  const at = Number(bytes.readBigInt64BE(0))
  return at >= 0 ? at : -1
}
