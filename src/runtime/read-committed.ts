/**
 * Read_committed fetching: a Fetch whose record batches come back exactly as the broker sent them
 * (`fetchUnfiltered`), and the filter that keeps only what a read_committed consumer may see
 * (`committedRecords`).
 *
 * The broker already stops at the last stable offset, but it returns the batches of aborted
 * transactions below it together with a list of (producerId, firstOffset) of those transactions;
 * the client must drop them. This is the algorithm of Kafka's own consumer: walk the batches in
 * offset order; an aborted transaction's producer becomes "aborted" once its first offset is reached
 * and stays so until that producer's ABORT control marker.
 *
 * Why not `Consumer.fetch({ isolationLevel: READ_COMMITTED })`: @platformatic/kafka (2.12) then
 * filters the response itself, wrongly for a producer id that aborts more than once, which every
 * ragstream instance is (its transactional id, hence its producer id, survives restarts and is
 * shared by two instances given the same instance id). It keeps one aborted range per producer id
 * (the last one listed) and ends it at that producer's *last* ABORT marker in the response, not at
 * the first one after the range starts. An aborted transaction, then a committed one, then an ABORT
 * marker of the same producer id with no data before it in that partition (a transaction that added
 * the partition and was aborted before producing to it, e.g. by the other instance's
 * InitProducerId; the broker lists no aborted transaction for it) made the client drop the committed
 * transaction's batches and its COMMIT marker. Readers and changelog restores lost committed
 * records whose input offsets were committed (issue 3: the same-instance-id fencing test, and the
 * crash test's occasional ~33 lost records per key). Dropping earlier aborted ranges leaked their
 * records too. So ragstream fetches without that filter and applies the one below.
 *
 * Control batch record key (wire format): int16 version, int16 type (0 = ABORT, 1 = COMMIT).
 */
import {
  fetchV4,
  fetchV5,
  fetchV6,
  fetchV7,
  fetchV8,
  fetchV9,
  fetchV10,
  fetchV11,
  fetchV12,
  fetchV13,
  fetchV14,
  fetchV15,
  fetchV16,
  fetchV17,
  FetchIsolationLevels,
  NetworkError,
  type Consumer,
  type RecordsBatch,
} from '@platformatic/kafka'
import { sleep } from './backoff.ts'
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

export const NO_HEADERS: ReadonlyMap<string, Buffer> = new Map()

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

  const pending =
    aborted && aborted.length > 0
      ? [...aborted].sort((a, b) => (a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0))
      : []
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

export interface UnfilteredFetchPartition {
  readonly partition: number
  readonly fetchOffset: bigint
  readonly maxBytes: number
}

export interface UnfilteredFetchTopic {
  readonly topic: string
  readonly topicId: string
  readonly partitions: readonly UnfilteredFetchPartition[]
}

export interface UnfilteredFetchRequest {
  /** The partitions' leader. */
  readonly node: number
  readonly topics: readonly UnfilteredFetchTopic[]
  readonly minBytes: number
  readonly maxBytes: number
  readonly maxWaitMs: number
}

/** One partition of a Fetch answer, as the broker sent it. */
export interface FetchedPartition {
  readonly topic: string
  readonly partition: number
  readonly highWatermark: bigint
  readonly lastStableOffset: bigint
  readonly batches: readonly RecordsBatch[]
  readonly abortedTransactions: readonly AbortedTransaction[]
}

export interface UnfilteredFetchResponse {
  readonly throttleTimeMs: number
  readonly partitions: readonly FetchedPartition[]
}

type FetchApi = (typeof fetchV17)['api']

/** Newest first; versions up to 12 name topics, later ones give their ids. Same request arguments in all. */
const FETCH_APIS = [
  fetchV17,
  fetchV16,
  fetchV15,
  fetchV14,
  fetchV13,
  fetchV12,
  fetchV11,
  fetchV10,
  fetchV9,
  fetchV8,
  fetchV7,
  fetchV6,
  fetchV5,
  fetchV4,
].map((m) => m.api as unknown as FetchApi)
const FETCH_KEY = 1
/** Session id 0 with epoch -1: a full fetch that creates no fetch session on the broker (KIP-227). */
const NO_SESSION = { id: 0, epoch: -1 }
const NETWORK_RETRIES = 3

const negotiated = new WeakMap<Consumer, Promise<FetchApi>>()

/** The newest Fetch version both the broker and the client library speak (asked once per client). */
function fetchApi(consumer: Consumer): Promise<FetchApi> {
  let api = negotiated.get(consumer)
  if (!api) {
    api = consumer.listApis().then((apis) => {
      const range = apis.find((a) => a.apiKey === FETCH_KEY)
      const chosen = range && FETCH_APIS.find((a) => a.version >= range.minVersion && a.version <= range.maxVersion)
      if (!chosen)
        throw new Error(`the broker supports Fetch v${range?.minVersion}-v${range?.maxVersion}, none of v4-v17`)
      return chosen
    })
    negotiated.set(consumer, api)
    api.catch(() => negotiated.delete(consumer))
  }
  return api
}

/**
 * A read_committed Fetch of explicit positions through `consumer`'s connections, without a fetch
 * session and without the client library's aborted-transaction filter (see the top of this file):
 * the caller filters with `committedRecords`. A partition error rejects, as `Consumer.fetch` does
 * (e.g. OFFSET_OUT_OF_RANGE, NOT_LEADER_OR_FOLLOWER); a dropped connection is retried a few times.
 */
export async function fetchUnfiltered(
  consumer: Consumer,
  request: UnfilteredFetchRequest,
): Promise<UnfilteredFetchResponse> {
  const api = await fetchApi(consumer)
  const byName = api.version <= 12
  const names = new Map(request.topics.map((t) => [byName ? t.topic : t.topicId, t.topic]))
  const topics = request.topics.map((t) => ({
    topicId: byName ? t.topic : t.topicId,
    partitions: t.partitions.map((p) => ({
      partition: p.partition,
      currentLeaderEpoch: -1,
      fetchOffset: p.fetchOffset,
      lastFetchedEpoch: -1,
      partitionMaxBytes: p.maxBytes,
    })),
  }))
  for (let attempt = 0; ; attempt++) {
    try {
      const connection = (await consumer.connectToBrokers([request.node])).get(request.node)
      if (!connection) throw new Error(`broker ${request.node} is not in the cluster metadata`)
      const response = await api.async(
        connection,
        request.maxWaitMs,
        request.minBytes,
        request.maxBytes,
        FetchIsolationLevels.READ_COMMITTED,
        NO_SESSION.id,
        NO_SESSION.epoch,
        topics,
        [],
        '',
      )
      const partitions: FetchedPartition[] = []
      for (const t of response.responses) {
        const topic = names.get(t.topicId) ?? t.topicId
        for (const p of t.partitions) {
          partitions.push({
            topic,
            partition: p.partitionIndex,
            highWatermark: p.highWatermark,
            lastStableOffset: p.lastStableOffset,
            batches: p.records ?? [],
            abortedTransactions: p.abortedTransactions ?? [],
          })
        }
      }
      return { throttleTimeMs: response.throttleTimeMs, partitions }
    } catch (error) {
      if (attempt >= NETWORK_RETRIES || !NetworkError.isRetryable(error as Error)) throw error
      await sleep(200 * (attempt + 1))
    }
  }
}
