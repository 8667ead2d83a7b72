/**
 * The Kafka runtime: one consumer-group member that runs one task per assigned input partition and
 * processes them in batches, exactly once.
 *
 * One batch = one Kafka transaction (design point 4):
 *   read (read_committed, from the committed offsets) → prefetch stores → topology.process()
 *   → produce outputs and the stores' changelog records → send the input offsets (next offset to
 *   read) with the group generation the batch was read under → commit
 *   → only then write the store overlays and changelog checkpoints to the backing store (flush).
 * Any failure before the commit aborts, drops the store overlays, discards the producer and resumes
 * from the committed offsets with freshly restored stores; an uncertain outcome is handled the same
 * way because re-initialising the transactional id completes (or aborts) whatever was in flight, and
 * the committed offsets read afterwards with require_stable say which one it was.
 *
 * Zombie fencing (KIP-447): the transactional id is per instance (`<applicationId>-<instanceId>`), so
 * a restarted instance with the same id fences its previous incarnation and aborts its open
 * transaction at once; offsets are committed with the generation and member id of the assignment,
 * so a member that lost its partitions in a rebalance cannot commit them, and a new owner reads
 * committed offsets with require_stable, so it waits for a zombie's in-flight offsets to resolve.
 * A fenced producer stops the instance (RS_PRODUCER_FENCED); it is never retried.
 */
import { randomUUID } from 'node:crypto'
import { Consumer, findErrorBy, ListOffsetTimestamps, Producer, type MessageToProduce } from '@platformatic/kafka'
import { RagstreamError } from '../errors.ts'
import { ChangelogRestorer } from '../state/changelog.ts'
import { prefetchAll, type ChangelogRecord, type StateStore } from '../state/store.ts'
import { Backoff, sleep, withTimeout } from './backoff.ts'
import { produceBounded } from './bounded-produce.ts'
import { COPARTITIONED_PROTOCOL, copartitionedAssigner } from './copartitioned-assigner.ts'
import {
  fetchStableOffsets,
  sendOffsetsToTransaction,
  type GroupMembership,
  type TopicPartitionOffset,
} from './group-offsets.ts'
import { ensureTopics, type ResolvedTopics } from './internal-topics.ts'
import { OffsetOutOfRangeError, PartitionReader, partitionKey, type Batch } from './partition-reader.ts'
import type { ProcessorTopology, SinkRecord } from './task.ts'

/** Points inside a batch's transaction, reported to `onBatchStage` (instrumentation and fault-injection tests). */
export type BatchStage = 'produced' | 'offsets-sent' | 'committed'

export interface RuntimeEvent {
  readonly event: string
  readonly [field: string]: unknown
}

export interface KafkaRuntimeOptions {
  readonly brokers: readonly string[]
  /** One store per name in `topology.storeNames`. The runtime closes them when it stops. */
  readonly stores: ReadonlyMap<string, StateStore>
  /**
   * Stable identity of this instance: the transactional id is `<applicationId>-<instanceId>`. Give a
   * restarted instance its previous id (e.g. the pod name) so it fences its predecessor immediately.
   * Two live instances must never share one. Default: a random id.
   */
  readonly instanceId?: string
  /** Batch bounds: a batch closes at this many records or bytes, whichever comes first. */
  readonly batchMaxRecords?: number
  readonly batchMaxBytes?: number
  readonly fetchMaxWaitMs?: number
  readonly sessionTimeoutMs?: number
  readonly heartbeatIntervalMs?: number
  readonly rebalanceTimeoutMs?: number
  /** Transaction timeout: the coordinator aborts a transaction open longer than this (and fences its producer). */
  readonly transactionTimeoutMs?: number
  /** Where a partition with no committed offset starts. */
  readonly autoOffsetReset?: 'earliest' | 'latest'
  /** Replication factor of the internal topics it creates; default -1 = the broker's default.replication.factor. */
  readonly replicationFactor?: number
  readonly onEvent?: (event: RuntimeEvent) => void
  readonly onBatchStage?: (stage: BatchStage) => void | Promise<void>
}

export interface RuntimeStats {
  batches: number
  records: number
  aborts: number
  restores: number
}

/** A store partition's backing store no longer holds the checkpoint this instance left there. */
class StoreCheckpointMismatch extends Error {
  constructor(store: string, partition: number, expected: bigint | undefined, actual: bigint | undefined) {
    const lost = actual === undefined || (expected !== undefined && actual < expected)
    super(
      `store "${store}" partition ${partition}: backing store checkpoint is ${actual ?? 'missing'}, expected ${expected ?? 'missing'} — ${lost ? 'it lost data' : 'another owner wrote to it'}; restoring from the changelog`,
    )
    this.name = 'StoreCheckpointMismatch'
  }
}

/** A batch was read under a generation that is no longer current: abort it, never commit it. */
class StaleGenerationError extends Error {
  constructor(read: number, current: number) {
    super(`group generation moved from ${read} to ${current} during the batch`)
    this.name = 'StaleGenerationError'
  }
}

function isFenced(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  return Boolean(
    findErrorBy(error, 'apiId', 'PRODUCER_FENCED') ||
    findErrorBy(error, 'apiId', 'INVALID_PRODUCER_EPOCH') ||
    findErrorBy(error, 'apiId', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED'),
  )
}

/** RS_STATE_FENCED (a newer checkpoint: another owner) or RS_STATE_LOST (the backing store lost the partition). */
function isStoreRefusal(error: unknown): boolean {
  return error instanceof RagstreamError && ['RS_STATE_FENCED', 'RS_STATE_LOST'].includes(error.code as string)
}

function isRebalance(error: unknown): boolean {
  if (error instanceof StaleGenerationError) return true
  if (error instanceof RagstreamError && error.code === 'RS_STATE_FENCED') return true
  if (!(error instanceof Error)) return false
  return ['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'REBALANCE_IN_PROGRESS', 'FENCED_INSTANCE_ID'].some((id) =>
    findErrorBy(error, 'apiId', id),
  )
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const nested = (error as Error & { errors?: unknown[] }).errors
  const inner =
    Array.isArray(nested) && nested.length > 0
      ? ` (${nested.map((e) => (e instanceof Error ? e.message : String(e))).join('; ')})`
      : ''
  return `${error.message}${inner}`
}

/**
 * Runs a compiled topology as one member of its consumer group (group id = `applicationId`).
 *
 * @example
 * const runtime = new KafkaRuntime(topology.compile({ partitions: 6 }), {
 *   brokers: ['127.0.0.1:9092'],
 *   stores: new Map([['customers', redisBackend.store('customers')]]),
 *   instanceId: process.env.HOSTNAME,
 *   onEvent: (e) => console.error(JSON.stringify(e)),
 * })
 * process.once('SIGTERM', () => runtime.stop())
 * await runtime.run() // resolves after stop(); rejects with RS_PRODUCER_FENCED if fenced
 */
export class KafkaRuntime {
  readonly #topology: ProcessorTopology
  readonly #options: KafkaRuntimeOptions
  readonly #transactionalId: string
  readonly #stop = new AbortController()
  readonly #stats: RuntimeStats = { batches: 0, records: 0, aborts: 0, restores: 0 }
  #resolved: ResolvedTopics | undefined
  #consumer: Consumer | undefined
  #producer: Producer | undefined
  #reader: PartitionReader | undefined
  #restorer: ChangelogRestorer | undefined
  #membership: GroupMembership | undefined
  #tasks: number[] = []
  #groupFailure: Error | undefined
  #running = false
  /** Partitions whose committed offset fell out of the log (retention): they restart by the reset policy. */
  readonly #outOfRange = new Set<string>()
  /** The changelog checkpoint each owned store partition must have in its backing store (`<store>:<partition>`). */
  readonly #checkpoints = new Map<string, bigint>()

  constructor(topology: ProcessorTopology, options: KafkaRuntimeOptions) {
    for (const name of topology.storeNames) {
      if (!options.stores.has(name))
        throw new RagstreamError('RS_CONFIG_INVALID', `no state store given for "${name}"`, {
          context: { field: `stores.${name}` },
        })
    }
    this.#topology = topology
    this.#options = options
    this.#transactionalId = `${topology.applicationId}-${options.instanceId ?? randomUUID()}`
  }

  get transactionalId(): string {
    return this.#transactionalId
  }

  get stats(): Readonly<RuntimeStats> {
    return this.#stats
  }

  /** Tasks (input partitions) this instance owns right now. */
  get tasks(): readonly number[] {
    return this.#tasks
  }

  /** Graceful stop: the open batch commits (or aborts if it cannot), the member leaves the group, `run()` resolves. */
  stop(): void {
    this.#stop.abort()
  }

  /** Runs until `stop()`; rejects with RS_PRODUCER_FENCED when another instance took over the transactional id. */
  async run(): Promise<void> {
    if (this.#running) throw new Error('KafkaRuntime.run() is already running')
    this.#running = true
    const o = this.#options
    this.#resolved = await ensureTopics(o.brokers, this.#topology, o.replicationFactor ?? -1)
    const sessionTimeout = o.sessionTimeoutMs ?? 10_000
    const consumer = new Consumer({
      groupId: this.#topology.applicationId,
      clientId: `${this.#transactionalId}-consumer`,
      bootstrapBrokers: [...o.brokers],
      sessionTimeout,
      heartbeatInterval: o.heartbeatIntervalMs ?? Math.max(100, Math.floor(sessionTimeout / 4)),
      rebalanceTimeout: o.rebalanceTimeoutMs ?? Math.max(sessionTimeout, 10_000),
      protocols: [COPARTITIONED_PROTOCOL],
      partitionAssigner: copartitionedAssigner,
      isolationLevel: 1,
      autocommit: false,
      retries: 3,
      retryDelay: 200,
    })
    this.#consumer = consumer
    consumer.on('error', (error: Error) => {
      this.#groupFailure = error
      this.#emit({ event: 'group-error', error: describeError(error) })
    })
    consumer.topics.trackAll(...this.#topology.sourceTopics)
    this.#reader = new PartitionReader(consumer, {
      fetchMaxBytes: this.#batchMaxBytes,
      fetchMaxWaitMs: o.fetchMaxWaitMs ?? 500,
    })
    this.#restorer = new ChangelogRestorer({
      bootstrapBrokers: o.brokers,
      clientId: `${this.#transactionalId}-restore`,
      fetchMaxBytes: this.#batchMaxBytes,
    })

    let fatal: unknown
    try {
      await this.#join()
      await this.#loop()
    } catch (error) {
      fatal = error
    }
    await this.#shutdown()
    if (fatal !== undefined) throw fatal
  }

  get #batchMaxBytes(): number {
    return this.#options.batchMaxBytes ?? 4 * 1024 * 1024
  }

  async #join(): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 5_000 })
    while (!this.#stop.signal.aborted) {
      try {
        this.#groupFailure = undefined
        await this.#consumer!.joinGroup({})
        return
      } catch (error) {
        this.#emit({ event: 'join-failed', error: describeError(error) })
        await sleep(backoff.next(), this.#stop.signal)
      }
    }
  }

  async #loop(): Promise<void> {
    const consumer = this.#consumer!
    const backoff = new Backoff({ initialMs: 100, maxMs: 5_000 })
    let needsAssignment = true
    while (!this.#stop.signal.aborted) {
      let inTransaction = false
      try {
        if (this.#groupFailure) await this.#join()
        if (needsAssignment || this.#membership?.generationId !== consumer.generationId) {
          const ready = await this.#assign()
          needsAssignment = !ready
          continue
        }
        const batch = await this.#reader!.nextBatch(this.#options.batchMaxRecords ?? 1_000, this.#batchMaxBytes)
        if (batch.records.length === 0) {
          if (this.#tasks.length === 0) await sleep(this.#options.fetchMaxWaitMs ?? 500, this.#stop.signal)
          continue
        }
        const membership = this.#membership!
        const outputs = await this.#process(batch)
        inTransaction = true
        await this.#commitTransaction(batch, membership, outputs)
        inTransaction = false
        backoff.reset()
      } catch (error) {
        for (const store of this.#options.stores.values()) store.discard()
        if (isFenced(error)) {
          await this.#discardProducer(error)
          this.#emit({ event: 'fenced', transactionalId: this.#transactionalId, error: describeError(error) })
          throw new RagstreamError(
            'RS_PRODUCER_FENCED',
            `producer ${this.#transactionalId} was fenced: another instance took over its transactional id, or its transaction timed out`,
            {
              cause: error,
              hint: 'this instance stops; its partitions are processed by the group members that remain',
            },
          )
        }
        // A store refusing a write (another owner, or it lost data) is settled by re-assigning and restoring, not by stopping.
        if (error instanceof RagstreamError && !error.retriable && !isStoreRefusal(error)) throw error
        this.#stats.aborts++
        if (inTransaction) await this.#discardProducer(error)
        needsAssignment = true
        if (error instanceof OffsetOutOfRangeError) {
          this.#emit({
            event: 'offset-out-of-range',
            partitions: error.partitions,
            policy: this.#options.autoOffsetReset ?? 'earliest',
          })
          for (const key of error.partitions) this.#outOfRange.add(key)
        } else if (isRebalance(error)) {
          this.#emit({ event: 'batch-aborted', reason: 'rebalance', error: describeError(error) })
          // Give the heartbeat a moment to notice the rebalance and rejoin before re-assigning.
          await sleep(this.#options.heartbeatIntervalMs ?? 250, this.#stop.signal)
        } else {
          const delay = backoff.next()
          // Inside the transaction the outcome is treated as unknown (RS_TRANSACTION_UNCERTAIN): the
          // re-initialised producer and the stable committed offsets settle it.
          this.#emit({
            event: 'batch-aborted',
            reason: 'transient',
            code: inTransaction ? 'RS_TRANSACTION_UNCERTAIN' : undefined,
            error: describeError(error),
            retryInMs: delay,
          })
          await sleep(delay, this.#stop.signal)
        }
      }
    }
  }

  /** Prepares the batch, prefetches every key it reads (one round trip per store partition, concurrently), then runs the topology. */
  async #process(batch: Batch): Promise<SinkRecord[]> {
    const stores = this.#options.stores
    // Per-batch I/O the topology needs before it can name its keys (e.g. loading Avro writer schemas).
    if (this.#topology.prepare) await this.#topology.prepare(batch.records)
    await prefetchAll(
      this.#topology.prefetchKeys(batch.records),
      stores,
      (name) => new RagstreamError('RS_TOPOLOGY_INVALID', `topology prefetches unknown store "${name}"`),
    )
    await this.#verifyStores(batch)
    return this.#topology.process(batch.records, stores, Date.now())
  }

  /**
   * After the prefetch, every store partition of the batch's tasks must still hold the checkpoint
   * this instance last restored or flushed. Values and checkpoint live and die together in the
   * backing store, so a missing or older checkpoint means the store lost data (Redis restarted
   * without persistence, FLUSHALL) and a newer one means another owner wrote; either way the
   * prefetched values cannot be trusted: abort, re-assign, restore from the changelog.
   */
  async #verifyStores(batch: Batch): Promise<void> {
    const partitions = new Set<number>()
    for (const r of batch.records) partitions.add(r.partition)
    await Promise.all(
      [...this.#options.stores].map(([name, store]) => this.#verifyCheckpoints(name, store, partitions)),
    )
  }

  async #verifyCheckpoints(name: string, store: StateStore, partitions: Iterable<number>): Promise<void> {
    const checks: Promise<void>[] = []
    for (const partition of partitions) {
      const expected = this.#checkpoints.get(`${name}:${partition}`)
      checks.push(
        store.checkpoint(partition).then((actual) => {
          if (actual !== expected) throw new StoreCheckpointMismatch(name, partition, expected, actual)
        }),
      )
    }
    await Promise.all(checks)
  }

  async #commitTransaction(batch: Batch, membership: GroupMembership, outputs: SinkRecord[]): Promise<void> {
    const consumer = this.#consumer!
    const changelogs = this.#resolved!.changelogs
    const changelog: SinkRecord[] = []
    const changelogStore = new Map<string, string>()
    for (const [name, store] of this.#options.stores) {
      const topic = changelogs.get(name)!
      changelogStore.set(topic, name)
      for (const record of store.drainChangelog()) changelog.push(changelogSinkRecord(topic, record))
    }

    const producer = this.#producer ?? this.#newProducer()
    const timeout = this.#options.transactionTimeoutMs ?? 30_000
    const transaction = await withTimeout(producer.beginTransaction(), timeout, 'begin transaction')
    const messages = [...outputs, ...changelog].map(toMessage)
    const ends = await produceBounded(
      (slice) => withTimeout(transaction.send({ messages: slice }), timeout, 'produce'),
      messages,
    )
    await this.#stage('produced')
    await withTimeout(transaction.addConsumer(consumer), timeout, 'add offsets to transaction')
    await withTimeout(
      sendOffsetsToTransaction(
        consumer,
        producer,
        {
          transactionalId: this.#transactionalId,
          producerId: producer.producerId!,
          producerEpoch: producer.producerEpoch!,
        },
        membership,
        batch.positions,
      ),
      timeout,
      'send offsets',
    )
    await this.#stage('offsets-sent')
    if (consumer.generationId !== membership.generationId)
      throw new StaleGenerationError(membership.generationId, consumer.generationId)
    await withTimeout(transaction.commit(), timeout, 'commit transaction')
    this.#stats.batches++
    this.#stats.records += batch.records.length
    await this.#stage('committed')

    // Committed: now (and only now) the overlays may reach the backing store, with each changelog
    // partition's next offset as its checkpoint. A crash before this point loses nothing: the
    // checkpoint in the backing store is older, and restore replays the changelog from there.
    const checkpoints = new Map<string, Map<number, bigint>>()
    for (const { topic, partition } of changelog) {
      const end = ends.get(partitionKey(topic, partition))
      if (end === undefined) continue
      const store = changelogStore.get(topic)!
      const map = checkpoints.get(store) ?? new Map<number, bigint>()
      map.set(partition, end)
      checkpoints.set(store, map)
    }
    await this.#flushStores(checkpoints)
  }

  /** Flushes every store; retried with backoff until it succeeds (a committed batch is never un-flushed by skipping). */
  async #flushStores(checkpoints: Map<string, Map<number, bigint>>): Promise<void> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 5_000 })
    for (const [name, store] of this.#options.stores) {
      const cps = checkpoints.get(name) ?? new Map<number, bigint>()
      for (;;) {
        try {
          // Writing this batch's overlay onto a store that lost its data would recreate the
          // partition with only these keys and a valid-looking checkpoint: check first. (The
          // backing store's own compare-and-set on the previous checkpoint closes the last gap.)
          await this.#verifyCheckpoints(name, store, cps.keys())
          await store.flush(cps)
          for (const [partition, offset] of cps) this.#checkpoints.set(`${name}:${partition}`, offset)
          break
        } catch (error) {
          if (
            error instanceof StoreCheckpointMismatch ||
            (error instanceof RagstreamError && (error.code as string) === 'RS_STATE_LOST')
          ) {
            // The batch is committed (its changelog records included); the restore after re-assignment applies it.
            store.discard()
            throw error
          }
          if (error instanceof RagstreamError && error.code === 'RS_STATE_FENCED') {
            // Another owner already wrote a newer checkpoint: our committed batch is in the changelog;
            // drop the overlay and re-assign (the generation has moved or is about to).
            this.#emit({ event: 'store-fenced', store: name, error: describeError(error) })
            store.discard()
            break
          }
          if (this.#stop.signal.aborted) throw error
          const delay = backoff.next()
          this.#emit({ event: 'flush-retry', store: name, error: describeError(error), retryInMs: delay })
          await sleep(delay, this.#stop.signal)
        }
      }
    }
  }

  async #stage(stage: BatchStage): Promise<void> {
    await this.#options.onBatchStage?.(stage)
  }

  #newProducer(): Producer {
    const o = this.#options
    this.#producer = new Producer({
      clientId: `${this.#transactionalId}-producer`,
      bootstrapBrokers: [...o.brokers],
      transactionalId: this.#transactionalId,
      idempotent: true,
      // InitProducerId must say "no current producer" (-1/-1, KIP-360): the client's default 0/0 makes
      // the coordinator answer PRODUCER_FENCED once the transactional id has a history.
      producerId: -1n,
      producerEpoch: -1,
      // Also the transaction timeout sent with InitProducerId.
      timeout: o.transactionTimeoutMs ?? 30_000,
      // Right after a commit the coordinator may still be writing markers and answer the next
      // transaction's AddPartitionsToTxn with CONCURRENT_TRANSACTIONS: retry that quickly.
      retries: 12,
      retryDelay: (_client, _operation, attempt) => Math.min(2 ** attempt, 500),
    })
    return this.#producer
  }

  /** Aborts what can be aborted and drops the producer; the next transaction re-initialises the transactional id. */
  async #discardProducer(cause: unknown): Promise<void> {
    const producer = this.#producer
    this.#producer = undefined
    if (!producer) return
    const transaction = producer.transaction
    if (transaction && !transaction.completed && !isFenced(cause)) {
      // The client can throw synchronously once its producer state is gone; treat that like a failed abort.
      await withTimeout(
        Promise.resolve().then(() => transaction.abort()),
        5_000,
        'abort',
      ).catch(() => {})
    }
    await withTimeout(
      Promise.resolve().then(() => producer.close(true)),
      5_000,
      'close producer',
    ).catch(() => {})
  }

  /**
   * (Re)assignment: read the committed offsets (stable) of the owned input partitions, restore every
   * store partition of the owned tasks from its changelog, and position the reader at the offsets.
   * Returns false when the generation moved meanwhile (the caller runs it again).
   */
  async #assign(): Promise<boolean> {
    const consumer = this.#consumer!
    const deadline = Date.now() + (this.#options.rebalanceTimeoutMs ?? 60_000)
    while (!consumer.isActive()) {
      if (this.#stop.signal.aborted) return false
      if (this.#groupFailure || Date.now() > deadline) return false
      await sleep(50, this.#stop.signal)
    }
    const generationId = consumer.generationId
    const memberId = consumer.memberId!
    const assignments = consumer.assignments ?? []
    const sources = new Set(this.#topology.sourceTopics)
    const owned = assignments
      .filter((a) => sources.has(a.topic))
      .flatMap((a) => a.partitions.map((partition) => ({ topic: a.topic, partition })))
    const tasks = [...new Set(owned.map((o) => o.partition))].sort((a, b) => a - b)
    this.#tasks = tasks
    this.#membership = undefined
    this.#checkpoints.clear()
    for (const store of this.#options.stores.values()) store.discard()
    this.#emit({ event: 'assigned', generationId, tasks })

    // Initialise the transactional id before reading offsets and restoring: that fences a previous
    // incarnation and aborts its open transaction, which would otherwise hold back the changelogs'
    // LSO and keep its pending offsets unstable until the transaction timeout.
    if (!this.#producer) {
      const producer = this.#newProducer()
      const transaction = await withTimeout(
        producer.beginTransaction(),
        this.#options.transactionTimeoutMs ?? 30_000,
        'initialise transactional id',
      )
      await transaction.cancel()
    }

    // Offsets before state. The previous owner of a task (another instance, another transactional
    // id, so not fenced above) may still have a transaction open that holds the task's pending
    // offsets and its changelog records; a restore ends at the changelog's LSO, i.e. before them.
    // Restoring first and then waiting for the offsets, a transaction that commits meanwhile moved
    // the offsets past a batch whose state the restore never saw (the zombie test that resumes
    // before its transaction timeout). Waiting for stable offsets first lets that transaction end,
    // and the restore then reads its changelog records too. (The coordinator writes the offsets'
    // COMMIT marker and the changelog's independently; the restorer gives a transaction still open
    // on the changelog a moment to end, so it does not stop at an LSO the marker is about to move.)
    let committed = new Map<string, bigint>()
    if (owned.length > 0) {
      const stable = await this.#stableOffsets(owned, generationId)
      if (!stable) return false
      committed = stable
    }

    for (const [name, store] of this.#options.stores) {
      const topic = this.#resolved!.changelogs.get(name)!
      for (const partition of tasks) {
        const onStart = ({ from, to }: { from: bigint; to: bigint }): void => {
          if (to > from) this.#emit({ event: 'restoring', store: name, partition, from, to })
        }
        const result = await this.#restorer!.restore({ store, partition, topic, onStart, signal: this.#stop.signal })
        this.#checkpoints.set(`${name}:${partition}`, result.to)
        this.#stats.restores++
        // Every 'restoring' is followed by a 'restored', so gauges of remaining records return to 0.
        if (result.restored > 0 || result.cleared || result.to > result.from) {
          this.#emit({
            event: 'restored',
            store: name,
            partition,
            from: result.from,
            to: result.to,
            records: result.restored,
            cleared: result.cleared,
          })
        }
        if (consumer.generationId !== generationId) return false
      }
    }

    const positions: TopicPartitionOffset[] = []
    for (const { topic, partition } of owned) {
      const key = partitionKey(topic, partition)
      const offset = this.#outOfRange.delete(key) ? -1n : (committed.get(key) ?? -1n)
      positions.push({ topic, partition, offset: offset >= 0n ? offset : await this.#resetOffset(topic, partition) })
    }
    await this.#reader!.assign(positions)
    if (consumer.generationId !== generationId) return false
    this.#membership = { groupId: consumer.groupId, generationId, memberId }
    return true
  }

  /** Committed offsets, waiting while a (possibly zombie) transaction still holds pending offsets. */
  async #stableOffsets(
    owned: { topic: string; partition: number }[],
    generationId: number,
  ): Promise<Map<string, bigint> | undefined> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1_000 })
    for (;;) {
      try {
        return await fetchStableOffsets(this.#consumer!, owned)
      } catch (error) {
        if (
          !findErrorBy(error as Error, 'apiId', 'UNSTABLE_OFFSET_COMMIT') &&
          !findErrorBy(error as Error, 'apiId', 'COORDINATOR_LOAD_IN_PROGRESS')
        )
          throw error
        if (this.#stop.signal.aborted || this.#consumer!.generationId !== generationId) return undefined
        this.#emit({ event: 'offsets-unstable' })
        await sleep(backoff.next(), this.#stop.signal)
      }
    }
  }

  async #resetOffset(topic: string, partition: number): Promise<bigint> {
    const latest = this.#options.autoOffsetReset === 'latest'
    const offsets = await this.#consumer!.listOffsets({
      topics: [topic],
      partitions: { [topic]: [partition] },
      timestamp: latest ? ListOffsetTimestamps.LATEST : ListOffsetTimestamps.EARLIEST,
      isolationLevel: 1,
    })
    const offset = offsets.get(topic)?.[partition]
    if (offset === undefined) throw new Error(`no ${latest ? 'latest' : 'earliest'} offset for ${topic}:${partition}`)
    return offset
  }

  async #shutdown(): Promise<void> {
    await this.#discardProducer(undefined)
    await withTimeout(this.#restorer?.close() ?? Promise.resolve(), 10_000, 'close restorer').catch(() => {})
    if (this.#consumer) {
      await withTimeout(this.#consumer.close(true), 10_000, 'leave group').catch(() => {})
    }
    for (const store of this.#options.stores.values()) await store.close().catch(() => {})
    this.#running = false
    this.#emit({ event: 'stopped', ...this.#stats })
  }

  #emit(event: RuntimeEvent): void {
    this.#options.onEvent?.(event)
  }
}

/* Changelog record: key = the store key as UTF-8, value = the stored bytes (null = tombstone), partition = the store partition = the task. */
function changelogSinkRecord(topic: string, record: ChangelogRecord): SinkRecord {
  return { topic, partition: record.partition, key: Buffer.from(record.key, 'utf8'), value: record.value }
}

function toMessage(record: SinkRecord): MessageToProduce<Buffer, Buffer, Buffer, Buffer> {
  const message: MessageToProduce<Buffer, Buffer, Buffer, Buffer> = { topic: record.topic, partition: record.partition }
  if (record.key !== null) message.key = record.key
  if (record.value !== null) message.value = record.value
  if (record.headers && record.headers.size > 0) {
    const headers = new Map<Buffer, Buffer>()
    for (const [name, value] of record.headers) headers.set(Buffer.from(name), value)
    message.headers = headers
  }
  return message
}
