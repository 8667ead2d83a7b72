/**
 * State-store changelogs on Kafka: the records a batch produces for its store writes, and the
 * restore that rebuilds a store partition from its changelog topic partition.
 *
 * Restore reads with read_committed up to the last stable offset (LSO) taken when the restore
 * starts (after a moment's wait if a transaction is open then: `openTransactionWaitMs`). Transactional topics have offset gaps (commit/abort markers, aborted records, compacted
 * records), so the loop advances by record-batch offsets, never by counting records, and it ends
 * when the position reaches the LSO even if the last offsets are transaction markers.
 *
 * Run a restore only after the instance's transactional producer is initialised (that fences its
 * previous incarnation and aborts its open transaction, so the LSO is not held back by it) and after
 * the task's committed offsets were read stable (a previous owner with another transactional id may
 * still commit a transaction holding changelog records beyond the LSO; see KafkaRuntime's assign).
 *
 * A changelog topic created a moment ago is not settled yet: the broker applies the new metadata
 * asynchronously, so for a while it answers Metadata with UNKNOWN_TOPIC_OR_PARTITION, and even once
 * it names a leader, ListOffsets and Fetch may get NOT_LEADER_OR_FOLLOWER until that leader has taken
 * the partition over. The client turns an unknown topic into a non-retriable "Unknown topic" error and
 * answers from a metadata cache (5 s) otherwise, so each step is retried here with forced metadata
 * refreshes and backoff, within `partitionWaitMs`; a topic or partition still absent after that is a
 * configuration error that names the topic.
 */
import { Consumer, FetchIsolationLevels, findErrorBy } from '@platformatic/kafka'
import { RagstreamError, ServiceUnavailableError } from '../errors.ts'
import { Backoff, sleep } from '../runtime/backoff.ts'
import type { SinkRecord } from '../runtime/task.ts'
import { committedRecords, fetchUnfiltered } from '../runtime/read-committed.ts'
import type { ChangelogRecord, StateStore } from './store.ts'

/** The changelog topic of a store: `<applicationId>-<store>-changelog` (compacted; one partition per store partition). */
export function changelogTopic(applicationId: string, store: string): string {
  return `${applicationId}-${store}-changelog`
}

/**
 * The records to produce, inside the batch's transaction, for `store.drainChangelog()`: keyed by the
 * store key (UTF-8), to partition p of the store's changelog topic; a delete is a null-value
 * tombstone (compaction removes the key).
 */
export function changelogSinkRecords(applicationId: string, records: readonly ChangelogRecord[]): SinkRecord[] {
  const topics = new Map<string, string>()
  return records.map(({ store, partition, key, value }) => {
    let topic = topics.get(store)
    if (topic === undefined) topics.set(store, (topic = changelogTopic(applicationId, store)))
    return { topic, partition, key: Buffer.from(key, 'utf8'), value }
  })
}

/** Where a restore is, reported after every applied chunk. */
export interface RestoreProgress {
  readonly store: string
  readonly partition: number
  readonly topic: string
  /** Changelog records applied so far. */
  readonly restored: number
  /** Offsets to read in all (from the start position to the end): an upper bound on the records, since markers and compaction leave gaps. */
  readonly total: number
  /** The next offset to read, and the LSO the restore runs to. */
  readonly position: bigint
  readonly end: bigint
}

export interface RestoreResult {
  readonly store: string
  readonly partition: number
  readonly topic: string
  /** The offset the restore started from (the checkpoint, or the log start after a clear). */
  readonly from: bigint
  /** The store's checkpoint afterwards. */
  readonly to: bigint
  readonly restored: number
  /** True when the store was cleared first: Redis lost the partition, or its checkpoint lay outside the log. */
  readonly cleared: boolean
}

export interface RestoreOptions {
  readonly store: StateStore
  readonly partition: number
  /** Names the changelog topic `<applicationId>-<store>-changelog`; ignored when `topic` is given. */
  readonly applicationId?: string
  /** A table read straight from a compacted source topic uses that topic as its changelog. */
  readonly topic?: string
  readonly onProgress?: (progress: RestoreProgress) => void
  /** Called once the range to replay is known, before the first fetch (also when it is empty). */
  readonly onStart?: (range: { readonly from: bigint; readonly to: bigint; readonly cleared: boolean }) => void
  /** Ends the wait for an unsettled partition (a runtime stopping): the restore fails at once with RS_SERVICE_UNAVAILABLE. */
  readonly signal?: AbortSignal
}

export interface ChangelogRestorerOptions {
  readonly bootstrapBrokers: readonly string[]
  readonly clientId?: string
  /** Records per `store.restore()` call (one Redis round trip each). Default 5000. */
  readonly chunkSize?: number
  /** Bytes per fetch. Default 8 MiB. */
  readonly fetchMaxBytes?: number
  /**
   * How long a changelog partition may stay unknown or without a ready leader (a topic just created,
   * a leader just moved) before the restore gives up: a missing topic or partition then fails with
   * RS_CONFIG_INVALID. Default 30 s.
   */
  readonly partitionWaitMs?: number
  /**
   * When the changelog partition has an open transaction at the start (LSO below the high
   * watermark), how long to wait for it to end before restoring to the LSO as it is. The committed
   * offsets a task starts from are read first and stable, but the coordinator writes the offsets'
   * COMMIT marker and the changelog's independently: a moment after the offsets turned stable the
   * changelog's marker may still be on its way, and restoring to the LSO then would miss the very
   * batch those offsets cover. A transaction still open after this is a live or zombie one the
   * task's state does not depend on. Default 1 s.
   */
  readonly openTransactionWaitMs?: number
}

/** Where a partition is read from, or why it cannot be yet. */
type PartitionLocation =
  { readonly topicId: string; readonly leader: number } | 'no-topic' | 'no-partition' | 'no-leader'

/** Metadata that says the partition is not settled yet (a topic just created, a leader just moved). */
class UnsettledPartition extends Error {}

/**
 * Partition errors of a topic just created or a leader just moved (UNKNOWN_TOPIC_OR_PARTITION,
 * LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH) reject a ListOffsets or Fetch
 * with a protocol error flagged `hasStaleMetadata`: refresh the metadata and retry.
 */
function isUnsettled(error: unknown): boolean {
  return (
    error instanceof UnsettledPartition ||
    (error instanceof Error && findErrorBy(error, 'hasStaleMetadata', true) !== null)
  )
}

/**
 * Restores store partitions from their changelog topics. One Kafka connection pool for every
 * restore; restores run one at a time.
 *
 * @example
 * const restorer = new ChangelogRestorer({ bootstrapBrokers: ['127.0.0.1:9092'] })
 * await restorer.restore({ store, applicationId: 'support-v1', partition: 3, onProgress: (p) => log(p) })
 * await restorer.close()
 */
export class ChangelogRestorer {
  readonly #consumer: Consumer
  readonly #brokers: string
  readonly #chunkSize: number
  readonly #fetchMaxBytes: number
  readonly #partitionWaitMs: number
  readonly #openTransactionWaitMs: number
  #queue: Promise<unknown> = Promise.resolve()

  constructor(options: ChangelogRestorerOptions) {
    this.#brokers = options.bootstrapBrokers.join(',')
    this.#chunkSize = options.chunkSize ?? 5000
    this.#fetchMaxBytes = options.fetchMaxBytes ?? 8 * 1024 * 1024
    this.#partitionWaitMs = options.partitionWaitMs ?? 30_000
    this.#openTransactionWaitMs = options.openTransactionWaitMs ?? 1_000
    const clientId = options.clientId ?? 'ragstream-restore'
    // The group id is never joined: the restorer only fetches by explicit offsets.
    this.#consumer = new Consumer({
      clientId,
      groupId: `${clientId}-unused`,
      bootstrapBrokers: [...options.bootstrapBrokers],
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
    })
  }

  /** Replays one store partition's changelog from its checkpoint (or from the log start after Redis lost it) to the LSO. */
  restore(options: RestoreOptions): Promise<RestoreResult> {
    const run = this.#queue.then(() => this.#restore(options))
    this.#queue = run.catch(() => {})
    return run
  }

  async close(): Promise<void> {
    await this.#queue
    await this.#consumer.close(true)
  }

  async #restore({
    store,
    partition,
    applicationId,
    topic: explicitTopic,
    onProgress,
    onStart,
    signal,
  }: RestoreOptions): Promise<RestoreResult> {
    const topic = explicitTopic ?? (applicationId === undefined ? undefined : changelogTopic(applicationId, store.name))
    if (topic === undefined) throw new TypeError('restore needs an applicationId or a topic')
    const consumer = this.#consumer
    const missing = (): RagstreamError =>
      new RagstreamError(
        'RS_CONFIG_INVALID',
        `changelog topic ${topic} has no partition ${partition}; internal topics must be created before stores are restored`,
        {
          context: { topic, partition, service: 'Kafka', address: this.#brokers },
        },
      )
    consumer.topics.track(topic)
    try {
      const settled = <T>(
        what: string,
        step: (location: { topicId: string; leader: number }) => Promise<T>,
      ): Promise<T> => this.#settled(what, topic, partition, missing, step, signal)
      const offsets = async (
        timestamp: bigint,
        isolationLevel: number = FetchIsolationLevels.READ_COMMITTED,
      ): Promise<bigint> => {
        const result = await consumer.listOffsets({
          topics: [topic],
          partitions: { [topic]: [partition] },
          timestamp,
          isolationLevel,
        })
        const offset = result.get(topic)?.[partition]
        if (offset === undefined)
          throw new Error(`no ${timestamp === -2n ? 'earliest' : 'latest'} offset for ${topic}-${partition}`)
        return offset
      }
      // The checkpoint first: a flush only follows a commit, so a checkpoint read before the LSO is never beyond it.
      const checkpoint = await store.checkpoint(partition)
      const [logStart, lso, highWatermark] = await settled(`offsets of ${topic}-${partition}`, () =>
        Promise.all([offsets(-2n), offsets(-1n), offsets(-1n, FetchIsolationLevels.READ_UNCOMMITTED)]),
      )
      // An open transaction holds the LSO back: give it a moment to end (see openTransactionWaitMs).
      let end = lso
      const deadline = Date.now() + this.#openTransactionWaitMs
      while (end < highWatermark && Date.now() < deadline && !signal?.aborted) {
        await sleep(50, signal)
        end = await settled(`offsets of ${topic}-${partition}`, () => offsets(-1n))
      }
      // No checkpoint: Redis lost the partition. A checkpoint outside the log: the topic was
      // recreated or truncated, so the stored state cannot be continued. Both start from scratch.
      const cleared = checkpoint === undefined || checkpoint < logStart || checkpoint > end
      if (cleared) await store.clear(partition)
      const from = cleared ? logStart : checkpoint
      onStart?.({ from, to: end, cleared })
      const total = Number(end - from)
      let position = from
      let restored = 0

      let stored = cleared ? undefined : checkpoint
      let chunk: { key: string; value: Buffer | null }[] = []
      const apply = async (nextOffset: bigint): Promise<void> => {
        await store.restore(partition, chunk, nextOffset)
        stored = nextOffset
        restored += chunk.length
        chunk = []
        onProgress?.({ store: store.name, partition, topic, restored, total, position: nextOffset, end })
      }

      let emptyFetches = 0
      while (position < end) {
        const { response, data } = await settled(
          `fetch ${topic}-${partition} at ${position}`,
          async ({ topicId, leader }) => {
            // Not Consumer.fetch(): its read_committed filter drops committed records (see src/runtime/read-committed.ts).
            const response = await fetchUnfiltered(consumer, {
              node: leader,
              topics: [
                { topic, topicId, partitions: [{ partition, fetchOffset: position, maxBytes: this.#fetchMaxBytes }] },
              ],
              minBytes: 1,
              maxBytes: this.#fetchMaxBytes,
              maxWaitMs: 200,
            })
            return { response, data: response.partitions.find((p) => p.topic === topic && p.partition === partition) }
          },
        )
        const batches = data?.batches ?? []
        if (batches.length === 0) {
          if (response.throttleTimeMs > 0) {
            await new Promise((resolve) => setTimeout(resolve, response.throttleTimeMs))
            continue
          }
          // Below the LSO a read_committed fetch only comes back empty when nothing readable is left
          // before it (compaction removed the tail, markers included). Asked twice, it is the end.
          if (++emptyFetches < 2) continue
          position = end
          break
        }
        emptyFetches = 0

        // Aborted transactions dropped as the Java consumer drops them; markers and gaps skipped.
        const committed = committedRecords(topic, partition, position, batches, data?.abortedTransactions)
        for (const record of committed.records) {
          if (record.key === null) {
            throw new RagstreamError(
              'RS_DECODE_FAILED',
              `changelog ${topic}-${partition} has a record without a key at offset ${record.offset}`,
              {
                context: { topic, partition, offset: record.offset },
              },
            )
          }
          chunk.push({
            key: record.key.toString('utf8'),
            value: record.value === null ? null : Buffer.from(record.value),
          })
          if (chunk.length >= this.#chunkSize) await apply(record.offset + 1n)
        }
        position = committed.nextOffset
        await apply(position)
      }
      // Persist where the restore ended even when the last stretch held no records (markers only),
      // and give a cleared partition a checkpoint, so the next start reads nothing twice.
      if (stored !== position) await apply(position)
      return { store: store.name, partition, topic, from, to: position, restored, cleared }
    } finally {
      consumer.topics.untrack(topic)
    }
  }

  /**
   * Runs `step` against the partition's leader; while the partition is unknown, leaderless or its
   * leader not ready, again with fresh metadata and backoff, until `partitionWaitMs` has passed.
   */
  async #settled<T>(
    what: string,
    topic: string,
    partition: number,
    missing: () => RagstreamError,
    step: (location: { topicId: string; leader: number }) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    const deadline = Date.now() + this.#partitionWaitMs
    const backoff = new Backoff({ initialMs: 50, maxMs: 1_000 })
    let refresh = false
    for (;;) {
      let reason: unknown
      try {
        const location = await this.#locate(topic, partition, refresh)
        if (typeof location !== 'string') return await step(location)
        reason = location
      } catch (error) {
        if (error instanceof RagstreamError || !isUnsettled(error)) throw this.#unavailable(what, error)
        reason = error
      }
      const settling =
        reason === 'no-topic'
          ? `${topic} is unknown`
          : reason === 'no-partition'
            ? `${topic} has no partition ${partition}`
            : reason === 'no-leader'
              ? `${topic}-${partition} has no leader`
              : reason
      // Stopping is not a verdict on the topic: a restore cut short by the signal is only unavailable.
      if (signal?.aborted) throw this.#unavailable(`${what} (stopped while waiting)`, settling)
      if (Date.now() >= deadline)
        throw reason === 'no-topic' || reason === 'no-partition' ? missing() : this.#unavailable(what, settling)
      refresh = true
      await sleep(Math.min(backoff.next(), Math.max(0, deadline - Date.now())), signal)
    }
  }

  /** The partition's leader from the client's metadata (fetched afresh when `refresh`), or why there is none. */
  async #locate(topic: string, partition: number, refresh: boolean): Promise<PartitionLocation> {
    let metadata
    try {
      // No retries inside the client: an unknown topic would come back as a non-retriable error after
      // its fixed delays; #settled retries with its own backoff and bound instead.
      metadata = await this.#consumer.metadata({ topics: [topic], forceUpdate: refresh, retries: 0 })
    } catch (error) {
      if (
        error instanceof Error &&
        (findErrorBy(error, 'apiId', 'UNKNOWN_TOPIC_OR_PARTITION') || /unknown topic/i.test(error.message))
      )
        return 'no-topic'
      // Anything the client itself would retry (a dropped connection, a leader election) is retried here.
      if (error instanceof Error && findErrorBy(error, 'canRetry', false) === null)
        throw new UnsettledPartition(error.message, { cause: error })
      throw error
    }
    const info = metadata.topics.get(topic)
    if (!info) return 'no-topic'
    const partitionInfo = info.partitions[partition]
    if (!partitionInfo) return 'no-partition'
    if (partitionInfo.leader < 0) return 'no-leader'
    return { topicId: info.id, leader: partitionInfo.leader }
  }

  #unavailable(what: string, error: unknown): RagstreamError {
    if (error instanceof RagstreamError) return error
    const message = error instanceof Error ? error.message : String(error)
    return new ServiceUnavailableError('Kafka', this.#brokers, new Error(`${what}: ${message}`, { cause: error }))
  }
}
