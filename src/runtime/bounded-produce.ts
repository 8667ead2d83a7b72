/**
 * Produces a batch's records inside its transaction in sends of bounded size.
 *
 * @platformatic/kafka puts every record of one partition in one send into a single record batch, and
 * the broker refuses a batch above the topic's `max.message.bytes` (1 MiB by default) with
 * MESSAGE_TOO_LARGE. One input batch can easily produce more than that for one partition (a thousand
 * tickets' chunk events with 1536-d embeddings are several MiB), and retrying would fail the same
 * way forever. So the records go out in consecutive sends of at most `maxSendBytes` (estimated),
 * in order, which keeps each partition's record batch under the limit; only a single record larger
 * than the limit can still be refused (the runtime checks each record against its topic's limit
 * before producing). Should the broker refuse a send all the same, the error names the send's largest
 * record (topic, partition, key, size): a MESSAGE_TOO_LARGE alone names nothing.
 */
import type { MessageToProduce } from '@platformatic/kafka'
import { classifyError, RagstreamError } from '../errors.ts'
import { partitionKey } from './partition-reader.ts'

/** Default bound of one send: well under the broker's default max.message.bytes (1 MiB). */
export const MAX_SEND_BYTES = 512 * 1024
/** Per-record overhead in a v2 record batch (varints, attributes, deltas), generously. */
const RECORD_OVERHEAD = 32

type Message = MessageToProduce<Buffer, Buffer, Buffer, Buffer>

export interface ProducedOffsets {
  readonly offsets?: readonly { readonly topic: string; readonly partition: number; readonly offset: bigint }[]
}

/** What the caller's transaction can do: send records (one produce per call) and say where each partition's records landed. */
export type Send = (messages: Message[]) => Promise<ProducedOffsets>

function size(message: Message): number {
  let bytes = RECORD_OVERHEAD + (message.key?.length ?? 0) + (message.value?.length ?? 0)
  if (message.headers instanceof Map)
    for (const [name, value] of message.headers) bytes += name.length + value.length + 8
  return bytes
}

/** Consecutive slices of `messages`, each at most `maxSendBytes` (a larger single record is a slice of its own). */
export function sendSlices(messages: readonly Message[], maxSendBytes = MAX_SEND_BYTES): Message[][] {
  const slices: Message[][] = []
  let current: Message[] = []
  let bytes = 0
  for (const message of messages) {
    const n = size(message)
    if (current.length > 0 && bytes + n > maxSendBytes) {
      slices.push(current)
      current = []
      bytes = 0
    }
    current.push(message)
    bytes += n
  }
  if (current.length > 0) slices.push(current)
  return slices
}

/**
 * Sends `messages` in order, in bounded sends, and returns for every partition written the offset
 * after its last record (`<topic>:<partition>` → next offset); `starts`, when given, receives the
 * offset of each partition's first record.
 */
export async function produceBounded(
  send: Send,
  messages: readonly Message[],
  maxSendBytes = MAX_SEND_BYTES,
  starts?: Map<string, bigint>,
): Promise<Map<string, bigint>> {
  const ends = new Map<string, bigint>()
  for (const slice of sendSlices(messages, maxSendBytes)) {
    const counts = new Map<string, number>()
    for (const m of slice) {
      const key = partitionKey(m.topic, m.partition!)
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    let produced: ProducedOffsets
    try {
      produced = await send(slice)
    } catch (error) {
      throw classifyError(error).code === 'RS_MESSAGE_TOO_LARGE' ? refused(slice, error) : error
    }
    for (const { topic, partition, offset } of produced.offsets ?? []) {
      const key = partitionKey(topic, partition)
      const count = counts.get(key)
      if (count === undefined) continue
      ends.set(key, offset + BigInt(count))
      if (starts !== undefined && !starts.has(key)) starts.set(key, offset)
    }
  }
  return ends
}

/** The broker refused a send as too large: what it held, and its largest record. */
function refused(slice: readonly Message[], cause: unknown): RagstreamError {
  let largest = slice[0]
  let total = 0
  for (const m of slice) {
    total += size(m)
    if (size(m) > size(largest)) largest = m
  }
  const key = largest.key === undefined ? 'null' : JSON.stringify(largest.key.subarray(0, 64).toString('utf8'))
  return new RagstreamError(
    'RS_MESSAGE_TOO_LARGE',
    `the broker refused a send of ${slice.length} records (~${total} bytes) as too large; its largest: ${largest.topic} partition ${largest.partition} key ${key}, ~${size(largest)} bytes`,
    {
      cause,
      context: { topic: largest.topic, partition: largest.partition, size: size(largest) },
      hint: "compare the topic's max.message.bytes (and the broker's message.max.bytes) with the runtime's maxRecordBytes",
    },
  )
}
