/**
 * The FK join's bytes: what travels on its two repartition topics (subscriptions, responses) and what
 * its subscription store holds. Each format starts with a version byte; a value starting with `{` is
 * the earlier JSON format, still read (records written before the binary formats may still be on the
 * topics or in the changelog).
 */
import { hash } from 'node:crypto'
import { RagstreamError } from '../../errors.ts'
import { decodeJson } from '../../topology/json.ts'

export const UNSUBSCRIBE = 0
export const PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE = 1
export const PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE = 2
const WIRE_V1 = 0x01
const JSON_START = 0x7b // '{'

/**
 * Items per pack on the subscription and response topics. The runtime bounds a batch (one
 * transaction) by records, and every left row costs a subscription and a response: packed, those cost
 * 1/PER_PACK of a record each, so a batch's fixed cost is shared by ~PER_PACK times more rows. Small on
 * purpose: a batch of packs does up to PER_PACK times the work (and output) of a batch of records.
 */
export const PER_PACK = 16

/** KIP-213's stale-response check: a 128-bit hash of the left row's stored bytes. */
export function leftHash(bytes: Buffer): string {
  return hash('md5', bytes, 'base64')
}

/* Subscription record: one item of a record pack (src/topology/record-pack.ts) — the subscriptions a
 * left owner sends one partition in one batch, in order, at most PER_PACK to a record. Item key =
 * foreign key (UTF-8), partition = partitionForString(foreign key), item value =
 *   0x01 (version) | u8 instruction | u32 left partition | u32 left key length | left key UTF-8 | left hash (base64; none = null)
 * A value starting with `{` is the earlier format, still read: JSON {"i", "k", "p", "h"}. */
export interface Subscription {
  /** Instruction: UNSUBSCRIBE or one of the PROPAGATE_* modes. */
  readonly i: number
  /** Left key. */
  readonly k: string
  /** Left partition. */
  readonly p: number
  /** Left hash (null on unsubscribe). */
  readonly h: string | null
}

export function subscriptionBytes(
  instruction: number,
  leftKey: string,
  leftPartition: number,
  leftHashValue: string | null,
): Buffer {
  const keyLength = Buffer.byteLength(leftKey, 'utf8')
  const bytes = Buffer.allocUnsafe(10 + keyLength + (leftHashValue?.length ?? 0))
  bytes[0] = WIRE_V1
  bytes[1] = instruction
  bytes.writeUInt32BE(leftPartition, 2)
  bytes.writeUInt32BE(keyLength, 6)
  bytes.write(leftKey, 10, 'utf8')
  if (leftHashValue !== null) bytes.write(leftHashValue, 10 + keyLength, 'latin1')
  return bytes
}

export function decodeSubscription(bytes: Buffer): Subscription {
  if (bytes[0] === JSON_START) return decodeJson(bytes) as Subscription
  if (bytes[0] !== WIRE_V1 || bytes.length < 10)
    throw new RagstreamError('RS_DECODE_FAILED', `not a subscription (version byte ${bytes[0]})`)
  const keyEnd = 10 + bytes.readUInt32BE(6)
  if (keyEnd > bytes.length) throw new RagstreamError('RS_DECODE_FAILED', 'the subscription is truncated')
  return {
    i: bytes[1],
    p: bytes.readUInt32BE(2),
    k: bytes.toString('utf8', 10, keyEnd),
    h: bytes.length > keyEnd ? bytes.toString('latin1', keyEnd, bytes.length) : null,
  }
}

/* Response record: one item of a record pack, at most PER_PACK to a record. Item key = left key
 * (UTF-8), partition = the left partition from the subscription, item value =
 *   0x01 (version) | u32 left hash length (0xffffffff = null) | left hash (base64) | the right row's JSON bytes (none = no row)
 * The right row's bytes are spliced in unparsed: one row fans out to many left keys.
 * A value starting with `{` is the earlier format, still read: JSON {"h": left hash | null, "v": right value | null}. */
export interface Response {
  readonly h: string | null
  readonly v: unknown
  /** The right row's JSON bytes, parsed only once the answer turns out current (most stale ones never are). */
  readonly json?: Buffer | null
}

const NO_HASH = 0xffffffff

export function responseBytes(leftHashValue: string | null, right: Buffer | null): Buffer {
  const hashLength = leftHashValue?.length ?? 0
  const bytes = Buffer.allocUnsafe(5 + hashLength + (right?.length ?? 0))
  bytes[0] = WIRE_V1
  bytes.writeUInt32BE(leftHashValue === null ? NO_HASH : hashLength, 1)
  if (leftHashValue !== null) bytes.write(leftHashValue, 5, 'latin1')
  right?.copy(bytes, 5 + hashLength)
  return bytes
}

export function decodeResponse(bytes: Buffer): Response {
  if (bytes[0] === JSON_START) return decodeJson(bytes) as Response
  if (bytes[0] !== WIRE_V1 || bytes.length < 5)
    throw new RagstreamError('RS_DECODE_FAILED', `not a join response (version byte ${bytes[0]})`)
  const hashLength = bytes.readUInt32BE(1)
  const valueStart = hashLength === NO_HASH ? 5 : 5 + hashLength
  if (valueStart > bytes.length) throw new RagstreamError('RS_DECODE_FAILED', 'the join response is truncated')
  return {
    h: hashLength === NO_HASH ? null : bytes.toString('latin1', 5, valueStart),
    v: undefined,
    json: bytes.length > valueStart ? bytes.subarray(valueStart) : null,
  }
}

/* Right repartition record: key = right key (UTF-8), partition = partitionForString(right key),
 * value = JSON of the right value after the right input's filter/mapValues chain; null = deleted. */

/* Subscription store `<join>-subscriptions`, one entry per (right key, left key):
 *   key   = groupedKey(right key, left key)   (src/state/store.ts: a prefix scan of the right key finds them all)
 *   value = 0x01 (version) | u32 left partition | left hash (base64; none = null)
 * Earlier versions kept one value per right key, JSON [[left key, left partition, left hash], ...], which
 * grew with every left row pointing at the key (over 1 MiB, Kafka's default record limit, at ~26,500
 * rows). Such a value is migrated the first time its right key is touched (see subscription-store.ts). */
export interface SubscriptionEntry {
  readonly partition: number
  readonly hash: string | null
}

export function entryBytes(leftPartition: number, leftHashValue: string | null): Buffer {
  const bytes = Buffer.allocUnsafe(5 + (leftHashValue?.length ?? 0))
  bytes[0] = WIRE_V1
  bytes.writeUInt32BE(leftPartition, 1)
  if (leftHashValue !== null) bytes.write(leftHashValue, 5, 'latin1')
  return bytes
}

export function decodeEntry(bytes: Buffer): SubscriptionEntry {
  if (bytes[0] !== WIRE_V1 || bytes.length < 5)
    throw new RagstreamError('RS_DECODE_FAILED', `not a subscription entry (version byte ${bytes[0]})`)
  return { partition: bytes.readUInt32BE(1), hash: bytes.length > 5 ? bytes.toString('latin1', 5) : null }
}

/** The value under a right key in the earlier layout: JSON [[left key, left partition, left hash], ...]. */
export function decodeLegacyIndex(bytes: Buffer): [string, number, string | null][] {
  return decodeJson(bytes) as [string, number, string | null][]
}
