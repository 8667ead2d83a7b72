/**
 * Reads assigned partitions from explicit positions with read_committed fetches, and hands out
 * batches bounded by record count and bytes. The runtime owns the positions: after a commit it keeps
 * reading; after an abort it re-assigns from the committed offsets, which drops anything buffered.
 *
 * Memory stays bounded while catching up a backlog: at most one fetch response (≤ `fetchMaxBytes`,
 * or one record batch if a single batch is larger) is buffered at a time.
 *
 * Fair across partitions (as the Java consumer is): the broker fills a fetch response in request
 * order, so a request that let one partition take the whole response and always named the same
 * partition first would drain a backlog one partition after another. Each partition may take only
 * its share of a fetch (`fetchMaxBytes` / partitions), the partitions served least recently are asked
 * first (a record batch larger than the share is returned only to the first partition that has data,
 * so with large producer batches the partitions take turns), and a batch hands out each buffered
 * partition's share of `maxRecords` before filling up from the others.
 */
import { findErrorBy, type ClusterMetadata, type Consumer } from '@platformatic/kafka'
import { committedRecords, fetchUnfiltered, type UnfilteredFetchPartition } from './read-committed.ts'
import type { TopicPartitionOffset } from './group-offsets.ts'
import type { SourceRecord } from './task.ts'

interface PartitionState {
  readonly topic: string
  readonly partition: number
  readonly key: string
  /** Next offset to ask the broker for. */
  fetchOffset: bigint
  buffer: SourceRecord[]
  bufferIndex: number
  /** Position after everything handed out so far (control markers and aborted data included). */
  consumed: bigint
  /** The fetch that last returned records for it (0: never): the least recently served are asked first. */
  servedAt: number
  /**
   * Where the log ends as far as this reader knows (undefined: not known): the offset the next record
   * appended to it would take. Set when a fetch read up to the high watermark; moved by the caller's
   * own chained records and its own commit marker; forgotten when the caller writes records here it
   * does not chain (they lie beyond, unread). Only a guess: whoever relies on it verifies it.
   */
  knownEnd: bigint | undefined
  /** Records were chained ahead of their produce: the position is past the log end until they land, so no fetch asks for it. */
  ahead: boolean
  /**
   * The caller's committed transaction's marker goes here (right after its chained records), and no
   * fetch has read past it yet: the coordinator writes markers after the commit returns, so a fetch
   * may still end before it.
   */
  markerAt: bigint | undefined
  /** When a fetch last returned records of it (performance.now()): records no round of ours chained, usually another writer's. */
  fetchedAt: number
}

/**
 * A partition a fetch returned records of within this long is not chained ahead: it has other writers
 * (another instance's subscriptions to this one's partition), and a record of theirs landing first
 * would abort the transaction.
 */
const CHAIN_AHEAD_QUIET_MS = 30_000

export interface ReaderOptions {
  readonly fetchMaxBytes: number
  readonly fetchMaxWaitMs: number
}

export interface Batch {
  readonly records: SourceRecord[]
  readonly bytes: number
  /** The next offset to read, for every partition whose position moved in this batch. */
  readonly positions: TopicPartitionOffset[]
}

export function partitionKey(topic: string, partition: number): string {
  return `${topic}:${partition}`
}

export class PartitionReader {
  readonly #consumer: Consumer
  readonly #options: ReaderOptions
  #states: PartitionState[] = []
  #metadata: ClusterMetadata | undefined
  #rotation = 0
  #fetches = 0
  /** Partitions whose fetch position fell out of the log (retention); the next assignment resets them. */
  readonly #outOfRange = new Set<string>()

  constructor(consumer: Consumer, options: ReaderOptions) {
    this.#consumer = consumer
    this.#options = options
  }

  /** Replaces the assignment: reading restarts exactly at these offsets, nothing buffered survives. */
  async assign(positions: readonly TopicPartitionOffset[]): Promise<void> {
    this.#states = positions.map(({ topic, partition, offset }) => ({
      topic,
      partition,
      key: partitionKey(topic, partition),
      fetchOffset: offset,
      buffer: [],
      bufferIndex: 0,
      consumed: offset,
      servedAt: 0,
      knownEnd: undefined,
      ahead: false,
      markerAt: undefined,
      fetchedAt: -Infinity,
    }))
    this.#metadata =
      this.#states.length > 0
        ? await this.#consumer.metadata({ topics: [...new Set(this.#states.map((s) => s.topic))], forceUpdate: true })
        : undefined
  }

  /** Whether `key`'s position fell out of the log since the last assignment (and forgets it). */
  takeOutOfRange(key: string): boolean {
    return this.#outOfRange.delete(key)
  }

  get assigned(): readonly TopicPartitionOffset[] {
    return this.#states.map((s) => ({ topic: s.topic, partition: s.partition, offset: s.consumed }))
  }

  /** Position after the last handed-out record of this partition. */
  position(topic: string, partition: number): bigint | undefined {
    return this.#state(topic, partition)?.consumed
  }

  /**
   * The next batch: at most `maxRecords` records and, past the first record, at most `maxBytes`. May be
   * empty. Every partition with buffered records first gets its share (`maxRecords` / such partitions,
   * rounded up), starting from a different partition each batch; what is left is then filled in the
   * same order. A partition's records stay in offset order. `maxWaitMs`: how long a fetch (when
   * nothing is buffered) may wait for records (default `fetchMaxWaitMs`; 0 = only what is there);
   * `minBytes`: how much it waits for (default 1: it returns with the first records).
   */
  async nextBatch(
    maxRecords: number,
    maxBytes: number,
    maxWaitMs = this.#options.fetchMaxWaitMs,
    minBytes = 1,
  ): Promise<Batch> {
    if (this.#states.length === 0) return { records: [], bytes: 0, positions: [] }
    if (this.#states.every((s) => s.bufferIndex >= s.buffer.length)) await this.#fetch(maxWaitMs, minBytes)

    const n = this.#states.length
    const start = this.#rotation++ % n
    const order = Array.from({ length: n }, (_, i) => this.#states[(start + i) % n])
    const before = order.map((s) => s.consumed)
    const buffered = order.filter((s) => s.bufferIndex < s.buffer.length).length
    const share = Math.max(1, Math.ceil(maxRecords / Math.max(1, buffered)))
    // Per partition, so the batch holds each partition's records together and in offset order.
    const taken: SourceRecord[][] = order.map(() => [])
    let count = 0
    let bytes = 0
    for (const quota of [share, maxRecords]) {
      order.forEach((state, i) => {
        const mine = taken[i]
        const limit = mine.length + quota
        while (
          state.bufferIndex < state.buffer.length &&
          mine.length < limit &&
          count < maxRecords &&
          (bytes < maxBytes || count === 0)
        ) {
          const record = state.buffer[state.bufferIndex++]
          mine.push(record)
          bytes += recordBytes(record)
          count++
        }
      })
    }
    const records = taken.flat()
    const positions: TopicPartitionOffset[] = []
    order.forEach((state, i) => {
      if (state.bufferIndex >= state.buffer.length) {
        state.buffer = []
        state.bufferIndex = 0
        state.consumed = state.fetchOffset
      } else {
        state.consumed = state.buffer[state.bufferIndex].offset
      }
      if (state.consumed !== before[i])
        positions.push({ topic: state.topic, partition: state.partition, offset: state.consumed })
    })
    return { records, bytes, positions }
  }

  /**
   * Hop chaining: the records at [from, to) of this partition were just written by the caller's open
   * transaction, which will also commit this partition's offset `to`. Takes them as read (the
   * position moves to `to`) if and only if nothing comes before them: the partition is assigned,
   * has nothing buffered, and its next offset to fetch is `from` (so no other records, committed,
   * open or aborted, lie between what was handed out and them). Returns whether it took them.
   */
  chain(topic: string, partition: number, from: bigint, to: bigint): boolean {
    const state = this.#state(topic, partition)
    if (state === undefined || state.bufferIndex < state.buffer.length || state.fetchOffset !== from) return false
    state.fetchOffset = to
    state.consumed = to
    // Someone else's records may already follow them.
    state.knownEnd = state.markerAt = undefined
    return true
  }

  /**
   * Hop chaining ahead of the produce: `count` records the caller is about to write to this
   * partition in its open transaction, taken as read before they are written, if the partition is
   * assigned, has nothing buffered, its log end is known (see `knownEnd`), and no fetch returned
   * records of it for `CHAIN_AHEAD_QUIET_MS` (no other writer lately). Returns the offset the
   * first of them must land at (the position moves past them), or undefined. The caller must verify
   * that they landed exactly there (`PartitionReader` cannot) and abort otherwise: another producer
   * may have written first.
   */
  chainAhead(topic: string, partition: number, count: number): bigint | undefined {
    const state = this.#state(topic, partition)
    if (state === undefined || state.bufferIndex < state.buffer.length || state.knownEnd === undefined) return undefined
    if (performance.now() - state.fetchedAt < CHAIN_AHEAD_QUIET_MS) return undefined
    const from = state.knownEnd
    state.fetchOffset = state.consumed = state.knownEnd = from + BigInt(count)
    state.ahead = true
    // Past our own marker, if one was still to come: the caller's verification proves it lies there.
    state.markerAt = undefined
    return from
  }

  #state(topic: string, partition: number): PartitionState | undefined {
    return this.#states.find((s) => s.topic === topic && s.partition === partition)
  }

  #byKey(key: string): PartitionState | undefined {
    return this.#states.find((s) => s.key === key)
  }

  /** Records chained ahead to these partitions landed where they were read: they may be fetched again. */
  landed(keys: Iterable<string>): void {
    for (const key of keys) {
      const state = this.#byKey(key)
      if (state) state.ahead = false
    }
  }

  /**
   * The caller wrote records to these partitions that it did not chain: they lie beyond the known
   * end, to be fetched. (Partitions this reader does not read are ignored.)
   */
  wroteUnchained(keys: Iterable<string>): void {
    for (const key of keys) {
      const state = this.#byKey(key)
      if (state) state.knownEnd = state.markerAt = undefined
    }
  }

  /**
   * The caller's transaction that wrote to these partitions committed: its commit marker takes the
   * next offset of each, right after the records it wrote (the coordinator writes the markers before
   * the producer's next transaction can add the partition again). A known end that stood at its
   * records moves past the marker.
   */
  committedOwn(keys: Iterable<string>): void {
    for (const key of keys) {
      const state = this.#byKey(key)
      if (state?.knownEnd === undefined || state.knownEnd !== state.fetchOffset) continue
      state.markerAt = state.knownEnd
      state.knownEnd += 1n
    }
  }

  async #fetch(maxWaitMs: number, minBytes: number): Promise<void> {
    const metadata = this.#metadata!
    const byNode = new Map<number, PartitionState[]>()
    // Least recently served first (stable: assignment order among equals). A partition chained ahead
    // waits until its records landed (its position is past the log end until then).
    const order = this.#states.filter((s) => !s.ahead).sort((a, b) => a.servedAt - b.servedAt)
    if (order.length === 0) return
    const fetch = ++this.#fetches
    for (const state of order) {
      const leader = metadata.topics.get(state.topic)?.partitions[state.partition]?.leader
      if (leader === undefined) throw new Error(`no leader known for ${state.key}`)
      const list = byNode.get(leader) ?? []
      list.push(state)
      byNode.set(leader, list)
    }
    try {
      await Promise.all(
        [...byNode].map(([node, states]) => this.#fetchFrom(node, states, metadata, fetch, maxWaitMs, minBytes)),
      )
    } catch (error) {
      // Leadership or topic metadata may have moved: refresh before the caller retries.
      this.#metadata = await this.#consumer
        .metadata({ topics: [...new Set(this.#states.map((s) => s.topic))], forceUpdate: true })
        .catch(() => metadata)
      throw error
    }
  }

  async #fetchFrom(
    node: number,
    states: PartitionState[],
    metadata: ClusterMetadata,
    fetch: number,
    maxWaitMs: number,
    minBytes: number,
  ): Promise<void> {
    // Each partition's share of the response (the broker still returns a first batch larger than it).
    const share = Math.max(1, Math.floor(this.#options.fetchMaxBytes / states.length))
    const topics = new Map<string, { topic: string; topicId: string; partitions: UnfilteredFetchPartition[] }>()
    const byKey = new Map<string, PartitionState>()
    for (const state of states) {
      const entry = topics.get(state.topic) ?? {
        topic: state.topic,
        topicId: metadata.topics.get(state.topic)!.id,
        partitions: [],
      }
      entry.partitions.push({
        partition: state.partition,
        fetchOffset: state.fetchOffset,
        maxBytes: share,
      })
      topics.set(state.topic, entry)
      byKey.set(state.key, state)
    }
    let response: Awaited<ReturnType<typeof fetchUnfiltered>>
    try {
      // Not Consumer.fetch(): its read_committed filter drops committed records (see read-committed.ts).
      response = await fetchUnfiltered(this.#consumer, {
        node,
        topics: [...topics.values()],
        minBytes,
        maxBytes: this.#options.fetchMaxBytes,
        maxWaitMs,
      })
    } catch (error) {
      if (findErrorBy(error as Error, 'apiId', 'OFFSET_OUT_OF_RANGE')) {
        for (const s of states) this.#outOfRange.add(s.key)
        throw new OffsetOutOfRangeError(
          states.map((s) => s.key),
          error,
        )
      }
      throw error
    }
    for (const p of response.partitions) {
      const state = byKey.get(partitionKey(p.topic, p.partition))
      if (!state) continue
      const { records, nextOffset } = committedRecords(
        state.topic,
        state.partition,
        state.fetchOffset,
        p.batches,
        p.abortedTransactions,
      )
      if (nextOffset > state.fetchOffset) state.servedAt = fetch
      if (records.length > 0) state.fetchedAt = performance.now()
      state.buffer = records
      state.bufferIndex = 0
      state.fetchOffset = nextOffset
      // Read up to the high watermark (nothing open or beyond): the next record appended lands there;
      // unless our own commit marker is still to be written there (then right after it).
      const marker = state.markerAt
      if (marker !== undefined && nextOffset > marker) state.markerAt = undefined
      if (state.markerAt !== undefined && nextOffset === marker && p.highWatermark <= marker)
        state.knownEnd = marker + 1n
      else state.knownEnd = nextOffset >= p.highWatermark ? nextOffset : undefined
    }
  }
}

/** `a` then `b` as one batch (each partition's records stay in offset order; the later position wins). */
export function joinBatches(a: Batch, b: Batch): Batch {
  if (b.records.length === 0 && b.positions.length === 0) return a
  const positions = new Map<string, TopicPartitionOffset>()
  for (const p of [...a.positions, ...b.positions]) positions.set(partitionKey(p.topic, p.partition), p)
  return { records: [...a.records, ...b.records], bytes: a.bytes + b.bytes, positions: [...positions.values()] }
}

export function recordBytes(record: SourceRecord): number {
  return (record.key?.length ?? 0) + (record.value?.length ?? 0)
}

export class OffsetOutOfRangeError extends Error {
  readonly partitions: readonly string[]
  constructor(partitions: readonly string[], cause: unknown) {
    super(`fetch offset out of range for ${partitions.join(', ')}`, { cause })
    this.name = 'OffsetOutOfRangeError'
    this.partitions = partitions
  }
}
