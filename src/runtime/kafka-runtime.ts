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
 *
 * Recovery is decided in one place: every failure goes through `classifyError` (src/errors.ts),
 * whose answer (retry, rejoin, restore, stop) is all the failure path consults. A producer that
 * may be in a broken state (any failure after it was created or began a transaction, until a
 * commit or a clean initialisation) is closed and replaced, never reused.
 */
import { guardedObserver } from '../observability/guarded-observer.ts'
import {
  Consumer,
  FetchIsolationLevels,
  findErrorBy,
  ListOffsetTimestamps,
  Producer,
  type MessageToProduce,
} from '@platformatic/kafka'
import {
  classifyError,
  isKafkaClientError,
  RagstreamError,
  ServiceUnavailableError,
  unavailableService,
  type Classified,
} from '../errors.ts'
import { ChangelogRestorer } from '../state/changelog.ts'
import { containClientFaults, type ClientFault } from './client-faults.ts'
import { prefetchAll, type ChangelogRecord, type StateStore } from '../state/store.ts'
import { Backoff, sleep, withTimeout } from './backoff.ts'
import { MAX_SEND_BYTES, produceBounded } from './bounded-produce.ts'
import { resolveRuntimeConfig, type BatchStage, type KafkaRuntimeOptions, type RuntimeConfig } from './config.ts'
import { COPARTITIONED_PROTOCOL, copartitionedAssigner } from './copartitioned-assigner.ts'
import { currentCheckpoints } from './current-checkpoints.ts'
import type { FailureFields, RuntimeEvent } from './events.ts'
import {
  fetchStableOffsets,
  sendOffsetsToTransaction,
  type GroupMembership,
  type TopicPartitionOffset,
} from './group-offsets.ts'
import { ensureTopics, type ResolvedTopics } from './internal-topics.ts'
import { DEAD_LETTER_HEADERS } from './dead-letter.ts'
import { ORIGIN_KEY_MAX_BYTES, originHeader } from './origin.ts'
import {
  joinBatches,
  PartitionReader,
  partitionKey,
  recordBytes as batchBytes,
  type Batch,
} from './partition-reader.ts'
import { RepartitionPurger } from './repartition-purge.ts'
import { NO_HEADERS } from './read-committed.ts'
import type { ProcessorTopology, SinkRecord, SourceRecord } from './task.ts'

export type { BatchStage, KafkaRuntimeOptions } from './config.ts'
export type { RuntimeEvent } from './events.ts'

export interface RuntimeStats {
  batches: number
  records: number
  aborts: number
  restores: number
  /** Source records dead-lettered by the runtime itself (outputs too large to produce). */
  deadLettered: number
}

/** After a rebalance error, a moment for the consumer's heartbeat to notice and rejoin before re-assigning. */
const REJOIN_PAUSE_MS = 250

/**
 * After another producer's record took an offset a chained-ahead round had read, chaining waits for
 * produces this long; twice as long after each further conflict with no chained-ahead commit between
 * (a partition with steady other writers), up to the maximum.
 */
const CHAIN_AHEAD_PAUSE_MS = 30_000
const CHAIN_AHEAD_MAX_PAUSE_MS = 15 * 60_000

/** A partition's records chained ahead of their produce, not produced yet: where the first must land, and how many. */
interface ChainedAhead {
  readonly topic: string
  readonly partition: number
  readonly from: bigint
  readonly count: number
}

/** Records chained ahead of their produce did not land where their round read them (see #chainAhead). */
class ChainedAheadConflict extends Error {
  readonly fields: { topic: string; partition: number; expectedOffset: string; landedAt: string }
  constructor(f: { topic: string; partition: number; expectedOffset: bigint; landedAt: bigint | undefined }) {
    super(`records chained ahead to ${f.topic}:${f.partition} landed at ${f.landedAt}, not ${f.expectedOffset}`)
    this.fields = { ...f, expectedOffset: `${f.expectedOffset}`, landedAt: `${f.landedAt}` }
  }
}

/**
 * A store partition's backing store no longer holds the checkpoint this instance left there: an
 * older or missing one means it lost data (RS_STATE_LOST), a newer one that another owner wrote
 * (RS_STATE_FENCED).
 */
function checkpointMismatch(
  store: string,
  partition: number,
  expected: bigint | undefined,
  actual: bigint | undefined,
): RagstreamError {
  const lost = actual === undefined || (expected !== undefined && actual < expected)
  return new RagstreamError(
    lost ? 'RS_STATE_LOST' : 'RS_STATE_FENCED',
    `store "${store}" partition ${partition}: backing store checkpoint is ${actual ?? 'missing'}, expected ${expected ?? 'missing'} — ${lost ? 'it lost data' : 'another owner wrote to it'}; restoring from the changelog`,
    { context: { node: store, partition } },
  )
}

/** A batch was read under a generation that is no longer current: abort it, never commit it. */
function staleGeneration(read: number, current: number): RagstreamError {
  return new RagstreamError('RS_GROUP_REBALANCED', `group generation moved from ${read} to ${current} during the batch`)
}

type Transaction = Awaited<ReturnType<Producer['beginTransaction']>>
type Message = MessageToProduce<Buffer, Buffer, Buffer, Buffer>
/** What one produce into the open transaction wrote: per partition the next offset, and the messages as sent. */
interface Produced {
  readonly written: Map<string, bigint>
  readonly messages: readonly Message[]
}
type Produce = (out: readonly SinkRecord[]) => Promise<Produced>

/** Where the loop was when a failure happened: it decides what the failure is reported as. */
type Phase = 'assign' | 'process' | 'transaction' | 'committed'

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
 *   onEvent: (e) => console.error(e), // events carry bigint offsets: JSON.stringify needs a replacer
 * })
 * process.once('SIGTERM', () => runtime.stop())
 * await runtime.run() // resolves after stop(); rejects with RS_PRODUCER_FENCED if fenced
 */
export class KafkaRuntime {
  readonly #topology: ProcessorTopology
  readonly #config: RuntimeConfig
  /** onEvent, guarded: an observer's throw never aborts what it reports on. */
  readonly #observe: (event: RuntimeEvent) => void
  readonly #transactionalId: string
  readonly #stop = new AbortController()
  readonly #stats: RuntimeStats = { batches: 0, records: 0, aborts: 0, restores: 0, deadLettered: 0 }
  /** Internal topics the topology both writes and reads: what a chained round may take (see #transaction). */
  readonly #chainTopics: ReadonlySet<string>
  #resolved: ResolvedTopics | undefined
  /** The largest record each written topic takes (maxRecordBytes, or its max.message.bytes when lower), known once the topics are resolved. */
  #limits = new Map<string, RecordLimit>()
  /** Bound of one produce: small enough for the strictest topic written (bounded-produce.ts). */
  #maxSendBytes = MAX_SEND_BYTES
  #consumer: Consumer | undefined
  #producer: Producer | undefined
  /** False from the moment the producer is created or begins a transaction until it initialised or committed cleanly. */
  #producerClean = false
  #reader: PartitionReader | undefined
  #restorer: ChangelogRestorer | undefined
  #purger: RepartitionPurger | undefined
  #membership: GroupMembership | undefined
  #tasks: number[] = []
  #groupFailure: Error | undefined
  /** A Kafka client threw outside any promise: its producer is replaced at the next batch boundary. */
  #clientFault: ClientFault | undefined
  #running = false
  /** The changelog checkpoint each owned store partition must have in its backing store (`<store>:<partition>`). */
  readonly #checkpoints = new Map<string, bigint>()
  /**
   * While set, batches hold one record, until every partition named here has passed the offset: a
   * batch whose state would be too large for its changelog is re-read record by record, so the one
   * record that causes it can be dead-lettered alone (with none of its effects) and the rest go on.
   */
  #isolateUntil: Map<string, bigint> | undefined
  /** When the last batch was read (performance.now()): what the adaptive linger compares with. */
  #lastBatchReadAt = -Infinity
  /** Whether records keep arriving (the batch being processed came soon after the one before). */
  #arriving = false
  /** The time between the last two batches read: a lone change after a pause does not make the next fetch linger. */
  #lastBatchGap = Infinity
  #lastBatchRecords = 1
  /** Until when (performance.now()) hop chaining produces before it chains, after a conflict. */
  #chainAheadPausedUntil = -Infinity
  /** Conflicts since the last transaction that committed records chained ahead (the pause doubles with each). */
  #chainConflicts = 0

  /** Throws RS_CONFIG_INVALID listing every problem of `options` (see `resolveRuntimeConfig`). */
  constructor(topology: ProcessorTopology, options: KafkaRuntimeOptions) {
    this.#topology = topology
    this.#config = resolveRuntimeConfig(topology, options)
    this.#observe = guardedObserver("the runtime's onEvent observer", this.#config.onEvent)
    this.#transactionalId = this.#config.transactionalId
    const read = new Set(topology.sourceTopics)
    this.#chainTopics = new Set(
      topology.topics.filter((t) => t.role === 'repartition' && read.has(t.name)).map((t) => t.name),
    )
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
    const c = this.#config
    try {
      this.#resolved = await ensureTopics(c.brokers, this.#topology, c.replicationFactor)
      for (const [topic, bytes] of this.#resolved.maxMessageBytes) {
        const limit = recordLimit(c.maxRecordBytes, bytes)
        this.#limits.set(topic, limit)
        this.#maxSendBytes = Math.min(this.#maxSendBytes, bytes - RECORD_BATCH_HEADER)
      }
    } catch (error) {
      this.#running = false
      // `connect ECONNREFUSED` and the like name the service, not the socket.
      if (classifyError(error).code === 'RS_SERVICE_UNAVAILABLE')
        throw new ServiceUnavailableError('Kafka', c.brokers.join(','), error)
      throw error
    }
    const consumer = new Consumer({
      groupId: this.#topology.applicationId,
      clientId: `${this.#transactionalId}-consumer`,
      bootstrapBrokers: [...c.brokers],
      // Static membership (KIP-345): a restart with the same id within the session timeout takes its
      // partitions back without a rebalance; nobody else stops.
      ...(c.staticMember ? { groupInstanceId: c.instanceId } : {}),
      sessionTimeout: c.sessionTimeoutMs,
      heartbeatInterval: c.heartbeatIntervalMs,
      rebalanceTimeout: c.rebalanceTimeoutMs,
      protocols: [COPARTITIONED_PROTOCOL],
      partitionAssigner: copartitionedAssigner,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      autocommit: false,
      retries: 3,
      retryDelay: 200,
    })
    this.#consumer = consumer
    consumer.on('error', (error: Error) => {
      this.#groupFailure = error
      const named = this.#named(error, classifyError(error).code)
      this.#emit({ event: 'group-error', error: describeError(named), ...unavailableService(named) })
    })
    consumer.on('consumer:group:rebalance', () => {
      if (!this.#stop.signal.aborted) this.#emit({ event: 'rebalancing' })
    })
    consumer.topics.trackAll(...this.#topology.sourceTopics)
    this.#reader = new PartitionReader(consumer, {
      fetchMaxBytes: c.batchMaxBytes,
      fetchMaxWaitMs: c.fetchMaxWaitMs,
    })
    this.#restorer = new ChangelogRestorer({
      bootstrapBrokers: c.brokers,
      clientId: `${this.#transactionalId}-restore`,
      fetchMaxBytes: c.batchMaxBytes,
    })

    if (c.purgeRepartitionTopics) {
      const sources = new Set(this.#topology.sourceTopics)
      this.#purger = new RepartitionPurger({
        brokers: c.brokers,
        clientId: `${this.#transactionalId}-purge`,
        topics: new Set(
          this.#topology.topics.filter((t) => t.role === 'repartition' && sources.has(t.name)).map((t) => t.name),
        ),
        intervalMs: c.repartitionPurgeIntervalMs,
        onEvent: (event) => this.#emit(event),
      })
    }

    // A client bug thrown from a socket callback would end the process: it is contained, and what it
    // may have broken is replaced (src/runtime/client-faults.ts).
    const guard = containClientFaults((fault) => {
      this.#clientFault = fault
      if (fault.part !== 'producer') this.#groupFailure = fault.error
      this.#emit({ event: 'client-error-contained', client: fault.part, error: describeError(fault.error) })
    })
    let fatal: unknown
    try {
      await this.#join()
      await this.#loop()
    } catch (error) {
      fatal = error
    }
    await this.#shutdown()
    guard.release()
    if (fatal !== undefined) throw fatal
  }

  async #join(): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 5_000 })
    while (!this.#stop.signal.aborted) {
      try {
        this.#groupFailure = undefined
        await this.#consumer!.joinGroup({})
        return
      } catch (error) {
        const { recovery, code } = classifyError(error)
        if (recovery === 'stop') throw error
        const retryInMs = backoff.next()
        const named = this.#named(error, code)
        this.#emit({
          event: 'join-failed',
          error: describeError(named),
          ...(code ? { code } : {}),
          ...unavailableService(named),
          retryInMs,
        })
        await sleep(retryInMs, this.#stop.signal)
      }
    }
  }

  async #loop(): Promise<void> {
    const consumer = this.#consumer!
    const c = this.#config
    const backoff = new Backoff({ initialMs: 100, maxMs: 5_000 })
    let needsAssignment = true
    while (!this.#stop.signal.aborted) {
      // An object, not a local: the commit callback moves it, and the failure path reads it.
      const at: { phase: Phase } = { phase: 'assign' }
      let records = 0
      try {
        if (this.#clientFault) {
          // The producer may be half-way through a callback that threw: never reused.
          const fault = this.#clientFault
          this.#clientFault = undefined
          await this.#discardProducer(fault.error)
          needsAssignment = true
        }
        if (this.#groupFailure) await this.#join()
        if (needsAssignment || this.#membership?.generationId !== consumer.generationId) {
          const ready = await this.#assign()
          needsAssignment = !ready
          continue
        }
        at.phase = 'process'
        if (this.#isolateUntil && this.#isolationDone()) this.#isolateUntil = undefined
        // While records keep arriving, the fetch itself lingers (see #linger): one request, which our
        // own commit markers (a few bytes) do not end early.
        const lingering = this.#lingering()
        const read = await this.#reader!.nextBatch(
          this.#isolateUntil ? 1 : c.batchMaxRecords,
          c.batchMaxBytes,
          lingering ? c.batchLingerMs : c.fetchMaxWaitMs,
          lingering ? c.batchMaxBytes : 1,
        )
        records = read.records.length
        if (read.records.length === 0) {
          if (this.#tasks.length === 0) await sleep(c.fetchMaxWaitMs, this.#stop.signal)
          continue
        }
        const batch = lingering ? this.#lingered(read) : await this.#linger(read)
        records = batch.records.length
        const membership = this.#membership!
        if (!(await this.#transaction(batch, membership, at))) {
          // Nothing was produced: read the batch again from the committed offsets, one record at a time.
          for (const store of c.stores.values()) store.discard()
          needsAssignment = true
          continue
        }
        backoff.reset()
      } catch (error) {
        for (const store of c.stores.values()) store.discard()
        const classified = classifyError(error)
        if (!this.#producerClean) await this.#discardProducer(error, classified)
        if (classified.recovery === 'stop' || classified.recovery === 'dead-letter')
          throw this.#fatal(error, classified)
        // Retry, rejoin or restore: the batch is read again from the committed offsets on a fresh
        // assignment (which restores the stores too), so nothing is skipped and nothing applied twice.
        needsAssignment = true
        const named = this.#named(error, classified.code)
        const failure: FailureFields = {
          recovery: classified.recovery,
          error: describeError(named),
          ...unavailableService(named),
          ...(classified.code
            ? { code: classified.code }
            : at.phase === 'transaction'
              ? { code: 'RS_TRANSACTION_UNCERTAIN' as const }
              : {}),
        }
        const phase = at.phase
        if (phase === 'committed') {
          // The batch stands; only its store overlays were not written. The assignment restores them.
          this.#emit({ event: 'committed-then-failed', records, ...failure })
          continue
        }
        this.#stats.aborts++
        if (classified.recovery === 'retry') {
          const retryInMs = backoff.next()
          this.#emit({ event: 'batch-aborted', phase, ...failure, retryInMs })
          await sleep(retryInMs, this.#stop.signal)
        } else {
          this.#emit({ event: 'batch-aborted', phase, ...failure })
          if (classified.recovery === 'rejoin') await sleep(REJOIN_PAUSE_MS, this.#stop.signal)
        }
      }
    }
  }

  /**
   * A network failure of the runtime's own Kafka clients (`connect ECONNREFUSED`, a dropped
   * connection) as the service it is: Kafka, at the brokers. Other services' failures name themselves.
   */
  #named(error: unknown, code: Classified['code']): unknown {
    if (code !== 'RS_SERVICE_UNAVAILABLE' || error instanceof RagstreamError || !isKafkaClientError(error)) return error
    return new ServiceUnavailableError(
      'Kafka',
      this.#config.brokers.join(','),
      new Error(describeError(error), { cause: error }),
    )
  }

  /**
   * Whether the next fetch lingers: records keep arriving, closer together than batchLingerMs (the
   * time between the last two batches over the last one's records), with no pause (the last two
   * batches, and the last one and now, less than 2 × batchLingerMs apart). After a lone change (a
   * pause before it), or in a trickle slower than the linger, the next fetch does not linger, so our
   * own commit markers end it: one request, where a linger would be two and would only add its wait.
   */
  #lingering(): boolean {
    const c = this.#config
    return (
      c.batchLingerMs > 0 &&
      this.#isolateUntil === undefined &&
      this.#lastBatchGap < 2 * c.batchLingerMs &&
      this.#lastBatchGap / this.#lastBatchRecords < c.batchLingerMs &&
      performance.now() - this.#lastBatchReadAt < 2 * c.batchLingerMs
    )
  }

  /** A batch read by a lingering fetch: it waited already. */
  #lingered(batch: Batch): Batch {
    const now = performance.now()
    this.#lastBatchGap = now - this.#lastBatchReadAt
    this.#lastBatchReadAt = now
    this.#lastBatchRecords = batch.records.length
    this.#arriving = true
    return batch
  }

  /**
   * Adaptive batch linger: when records keep arriving closer together than batchLingerMs (the time
   * since the previous batch over that batch's records) and without a pause (that time under
   * 2 × batchLingerMs), the batch waits up to batchLingerMs for more (one fetch the broker holds
   * until then), so a trickle is processed several changes per round: one produce, one prefetch
   * per store partition per hop, one commit for all of them. After a pause, or for a full batch, it
   * does not wait. Never while isolating records. A batch whose fetch already lingered
   * (`#lingering`) is not held again (`#lingered`).
   */
  async #linger(batch: Batch): Promise<Batch> {
    const c = this.#config
    const now = performance.now()
    const previous = this.#lastBatchReadAt
    // Records arrive closer together than the linger: the time since the last batch over its records.
    const interval = (now - previous) / this.#lastBatchRecords
    this.#lastBatchReadAt = now
    this.#lastBatchGap = now - previous
    this.#lastBatchRecords = batch.records.length
    // Without a linger, "arriving" keeps the commit cadence's look for more after every batch.
    this.#arriving = c.batchLingerMs === 0 || (now - previous < 2 * c.batchLingerMs && interval < c.batchLingerMs)
    if (c.batchLingerMs === 0 || this.#isolateUntil !== undefined || !this.#arriving) return batch
    if (batch.records.length >= c.batchMaxRecords || batch.bytes >= c.batchMaxBytes) return batch
    const more = await this.#reader!.nextBatch(
      c.batchMaxRecords - batch.records.length,
      c.batchMaxBytes - batch.bytes,
      c.batchLingerMs,
      c.batchMaxBytes,
    )
    const joined = joinBatches(batch, more)
    this.#lastBatchRecords = joined.records.length
    return joined
  }

  #isolationDone(): boolean {
    for (const [key, until] of this.#isolateUntil!) {
      const [topic, partition] = [key.slice(0, key.lastIndexOf(':')), Number(key.slice(key.lastIndexOf(':') + 1))]
      const position = this.#reader!.position(topic, partition)
      // A partition this instance no longer owns is not waited for.
      if (position !== undefined && position < until) return false
    }
    return true
  }

  #stateTooLargeDeadLetter(batch: Batch, state: SinkRecord): SinkRecord {
    const c = this.#config
    const [record] = batch.records
    // The record's origin when it is an internal one (a pack's items may have several: the pack is named).
    const source = record.origin ?? originHeader(record.headers) ?? record
    const bytes = recordBytes(state)
    const limit = this.#limitOf(state.topic)
    const deadLetters = this.#topology.topics.find((t) => t.role === 'dead-letter')
    if (deadLetters === undefined) throw stateRecordTooLarge(state, bytes, limit)
    const letter = tooLargeDeadLetter({ ...state, source, ...(source !== record ? { input: record } : {}) }, bytes, {
      topic: deadLetters.name,
      partition: record.partition % (deadLetters.partitions ?? this.#resolved!.partitions),
      limit,
      excerptBytes: c.deadLetterExcerptBytes,
      application: this.#topology.applicationId,
    })
    this.#stats.deadLettered++
    this.#emit({
      event: 'output-dead-lettered',
      code: 'RS_RECORD_TOO_LARGE',
      topic: state.topic,
      partition: state.partition,
      bytes,
      limit: limit.bytes,
      source: { topic: source.topic, partition: source.partition, offset: source.offset },
    })
    // The source record's own key, not the store key: a consumer of dead letters looks records up by source.
    return { ...letter, key: source.key !== null && source.key.length <= 1024 ? source.key : null }
  }

  /** The error `run()` rejects with: always coded, naming what happened (the fencing, the stage, the topic). */
  #fatal(error: unknown, { recovery, code }: Classified): RagstreamError {
    if (code === 'RS_PRODUCER_FENCED' && !(error instanceof RagstreamError)) {
      this.#emit({ event: 'fenced', transactionalId: this.#transactionalId, error: describeError(error) })
      return new RagstreamError(
        'RS_PRODUCER_FENCED',
        `producer ${this.#transactionalId} was fenced: another instance took over its transactional id, or its transaction timed out`,
        { cause: error, hint: 'this instance stops; its partitions are processed by the group members that remain' },
      )
    }
    this.#emit({ event: 'fatal', recovery, ...(code ? { code } : {}), error: describeError(error) })
    if (error instanceof RagstreamError) return error
    if (code === 'RS_TOPIC_MISSING')
      return new RagstreamError('RS_TOPIC_MISSING', `a topic the topology writes is missing: ${describeError(error)}`, {
        cause: error,
        hint: 'create the topology output topics (`ragstream run` creates them) and start again',
      })
    if (code === 'RS_MESSAGE_TOO_LARGE')
      return new RagstreamError(
        'RS_MESSAGE_TOO_LARGE',
        `the broker refused a record as too large: ${describeError(error)}`,
        {
          cause: error,
          hint: "lower the runtime's maxRecordBytes below the output topics' max.message.bytes",
        },
      )
    return new RagstreamError(code ?? 'RS_TOPOLOGY_INVALID', describeError(error), { cause: error })
  }

  /**
   * Prepares a batch, prefetches every key it reads (one round trip per store partition, concurrently,
   * with the checkpoint checks), then runs the topology. `verified`: the store partitions already
   * checked in this transaction (a chained round does not check them again).
   */
  async #process(batch: Batch, verified: Set<string>): Promise<SinkRecord[]> {
    const stores = this.#config.stores
    // Per-batch I/O the topology needs before it can name its keys (e.g. loading Avro writer schemas).
    if (this.#topology.prepare) await this.#topology.prepare(batch.records)
    // Issued in the same tick, the checkpoint reads go after the prefetches in one Redis pipeline
    // (the backend auto-pipelines): Redis still answers them after the values, with no round trip between.
    const loaded = prefetchAll(
      this.#topology.prefetchKeys(batch.records),
      stores,
      (name) => new RagstreamError('RS_TOPOLOGY_INVALID', `topology prefetches unknown store "${name}"`),
    )
    await Promise.all([loaded, this.#verifyStores(batch, verified)])
    return this.#topology.process(batch.records, stores, Date.now())
  }

  /**
   * After the prefetch, every store partition of the batch's tasks must still hold the checkpoint
   * this instance last restored or flushed. Values and checkpoint live and die together in the
   * backing store, so a missing or older checkpoint means the store lost data (Redis restarted
   * without persistence, FLUSHALL) and a newer one means another owner wrote; either way the
   * prefetched values cannot be trusted: abort, re-assign, restore from the changelog.
   */
  async #verifyStores(batch: Batch, verified: Set<string>): Promise<void> {
    const partitions = new Set<number>()
    for (const r of batch.records) if (!verified.has(`${r.partition}`)) partitions.add(r.partition)
    for (const partition of partitions) verified.add(`${partition}`)
    if (partitions.size === 0) return
    await Promise.all([...this.#config.stores].map(([name, store]) => this.#verifyCheckpoints(name, store, partitions)))
  }

  async #verifyCheckpoints(name: string, store: StateStore, partitions: Iterable<number>): Promise<void> {
    const checks: Promise<void>[] = []
    for (const partition of partitions) {
      const expected = this.#checkpoints.get(`${name}:${partition}`)
      checks.push(
        store.checkpoint(partition).then((actual) => {
          if (actual !== expected) throw checkpointMismatch(name, partition, expected, actual)
        }),
      )
    }
    await Promise.all(checks)
  }

  /**
   * One transaction: the batch, and then (hop chaining) the records it wrote to internal topic
   * partitions this instance reads, processed as the next round inside the same transaction, and
   * theirs, until a round writes none (or `maxChainedRounds`, or `batchMaxRecords` records). Then the
   * stores' changelog records and every round's input offsets go in, and it commits. Returns false
   * when nothing may be committed and the batch is to be read again one record at a time.
   *
   * Why a chained round is exactly once: a record is chained only when its partition's reader has
   * nothing before it (see `PartitionReader.chain`), so the round reads exactly the records the
   * partition would hand out next, in offset order, with the offsets, timestamps, keys, values and
   * headers the broker stored; its input offset (after them) commits in the same transaction as
   * their production, so either both happen or neither (an abort discards every round, and the
   * re-assignment re-reads from the committed offsets).
   */
  async #transaction(first: Batch, membership: GroupMembership, at: { phase: Phase }): Promise<boolean> {
    const consumer = this.#consumer!
    const c = this.#config
    const timeout = c.transactionTimeoutMs
    const chaining = c.maxChainedRounds > 0 && this.#isolateUntil === undefined
    const positions = new Map<string, TopicPartitionOffset>()
    const verified = new Set<string>()
    const cadence = c.commitIntervalMs > 0 && this.#isolateUntil === undefined
    let batch = first
    let records = 0
    let transaction: Transaction | undefined
    const begin = async (): Promise<Transaction> => {
      if (transaction) return transaction
      const producer = this.#producer ?? this.#newProducer()
      at.phase = 'transaction'
      this.#producerClean = false
      transaction = await withTimeout(producer.beginTransaction(), timeout, 'begin transaction')
      return transaction
    }
    // Hop chaining ahead of the produce (see #chainAhead): per partition, where the chained records
    // not produced yet must land and how many they are; and the timestamps their rounds read.
    const optimistic = chaining && performance.now() >= this.#chainAheadPausedUntil
    const expected = new Map<string, ChainedAhead>()
    const stamped = new Map<SinkRecord, bigint>()
    let chainedAhead = false
    // Every partition this transaction wrote: its commit marker follows their records.
    const wrote = new Set<string>()
    const produce: Produce = async (out) => {
      const t = await begin()
      const now = BigInt(Date.now())
      const messages = out.map((record) => toMessage(record, stamped.get(record) ?? now))
      const starts = new Map<string, bigint>()
      const written = await produceBounded(
        (slice) => withTimeout(t.send({ messages: slice }), timeout, 'produce'),
        messages,
        this.#maxSendBytes,
        starts,
      )
      this.#verifyChainedAhead(expected, messages, starts, written)
      for (const key of written.keys()) wrote.add(key)
      return { written, messages }
    }
    let checkpoints: Map<string, Map<number, bigint>> | undefined

    const opened = performance.now()
    // Positions of the batches taken from the reader (not chained): what an isolation re-reads.
    const read = new Map<string, TopicPartitionOffset>()
    const take = (b: Batch, into: Map<string, TopicPartitionOffset>[]) => {
      for (const p of b.positions) for (const map of into) map.set(partitionKey(p.topic, p.partition), p)
    }
    take(first, [read])
    let chained = 0
    // Outputs of earlier rounds not produced yet (bounded): they go out at the head of the next
    // produce, so a round whose outputs nothing chains costs no request of its own. Each partition's
    // records still reach the broker in the order they were produced by the topology.
    let held: SinkRecord[] = []
    // Held records no round chained: they will land beyond what the reader knows of their partitions.
    const hold = (out: readonly SinkRecord[]) => {
      this.#reader!.wroteUnchained(new Set(out.map((r) => partitionKey(r.topic, r.partition))))
      held = [...held, ...out]
    }
    try {
      for (;;) {
        records += batch.records.length
        take(batch, [positions])
        const produced = await this.#process(batch, verified)
        let pending = produced
        if (chaining && chained < c.maxChainedRounds && records < c.batchMaxRecords && this.#chainable(produced)) {
          const outputs = this.#boundOutputs(produced)
          let next: Batch | undefined
          if (optimistic) {
            // Chained before they are produced: they go out with the transaction's next produce.
            const ahead = this.#chainAhead(outputs, expected, stamped)
            if (ahead.chained.length > 0) chainedAhead = true
            hold(ahead.unchained)
            held = [...held, ...ahead.chained]
            next = ahead.batch
          } else {
            const { written, messages } = await produce([...held, ...outputs])
            next = this.#chain(outputs, { written, messages: messages.slice(held.length) })
            held = []
          }
          pending = []
          if (next !== undefined) {
            batch = next
            chained++
            continue
          }
        }
        // Commit cadence, adaptive: the transaction takes what is already there (buffered, or a fetch
        // that does not wait) until it has been open commitIntervalMs; when nothing is, it commits now.
        // After a pause (a lone change) nothing more is likely there: it commits without asking.
        if (
          cadence &&
          this.#arriving &&
          records < c.batchMaxRecords &&
          performance.now() - opened < c.commitIntervalMs
        ) {
          const more = await this.#reader!.nextBatch(c.batchMaxRecords - records, c.batchMaxBytes, 0)
          take(more, [positions, read])
          if (more.records.length > 0) {
            if (pending.length > 0) hold(this.#boundOutputs(pending))
            batch = more
            chained = 0
            continue
          }
        }
        checkpoints = await this.#produceChangelog(
          held,
          pending,
          records,
          first,
          [...read.values()],
          produce,
          transaction,
        )
        if (checkpoints === undefined) return false
        break
      }
    } catch (error) {
      if (!(error instanceof ChainedAheadConflict)) throw error
      // Another producer wrote to a partition first: the chained rounds read records that are not
      // where they assumed. Nothing of this transaction may commit; it is read again from the
      // committed offsets, chaining after the produce for a while (a busy partition's other writers).
      if (transaction) await withTimeout(transaction.abort(), timeout, 'abort')
      this.#producerClean = true
      const pause = Math.min(CHAIN_AHEAD_PAUSE_MS * 2 ** this.#chainConflicts++, CHAIN_AHEAD_MAX_PAUSE_MS)
      this.#chainAheadPausedUntil = performance.now() + pause
      this.#stats.aborts++
      this.#emit({ event: 'chain-conflict', ...error.fields, pausedForMs: pause })
      return false
    }
    await this.#stage('produced')
    const t = await begin()
    const producer = this.#producer!
    await withTimeout(t.addConsumer(consumer), timeout, 'add offsets to transaction')
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
        [...positions.values()],
      ),
      timeout,
      'send offsets',
    )
    await this.#stage('offsets-sent')
    if (consumer.generationId !== membership.generationId)
      throw staleGeneration(membership.generationId, consumer.generationId)
    await withTimeout(t.commit(), timeout, 'commit transaction')
    this.#producerClean = true
    at.phase = 'committed'
    this.#reader!.committedOwn(wrote)
    if (chainedAhead) this.#chainConflicts = 0
    this.#purger?.committed([...positions.values()])
    this.#stats.batches++
    this.#stats.records += records
    await this.#stage('committed')

    // Committed: now (and only now) the overlays may reach the backing store, with each changelog
    // partition's next offset as its checkpoint. A crash before this point loses nothing: the
    // checkpoint in the backing store is older, and restore replays the changelog from there.
    await this.#flushStores(checkpoints)
    return true
  }

  /**
   * The last step before the offsets: the stores' changelog records (after the outputs held from
   * earlier rounds and the last round's) go into the transaction; returns each store's checkpoints (per partition, the changelog's next
   * offset) for the flush after the commit. A state value too large for its changelog is found here:
   * with more than one record in the transaction, it aborts (nothing of it is visible) and the batch
   * is re-read one record at a time (returns undefined); a lone record is dead-lettered with none of
   * its effects.
   */
  async #produceChangelog(
    held: readonly SinkRecord[],
    produced: SinkRecord[],
    records: number,
    first: Batch,
    read: readonly TopicPartitionOffset[],
    produce: Produce,
    open: Transaction | undefined,
  ): Promise<Map<string, Map<number, bigint>> | undefined> {
    const changelogs = this.#resolved!.changelogs
    const changelog: SinkRecord[] = []
    const changelogStore = new Map<string, string>()
    for (const [name, store] of this.#config.stores) {
      const topic = changelogs.get(name)!
      changelogStore.set(topic, name)
      for (const record of store.drainChangelog()) changelog.push(changelogSinkRecord(topic, record))
    }
    // Checked before producing, so one record the broker would refuse never stalls the partition.
    let outputs: SinkRecord[]
    const tooLarge = changelog.find((record) => recordBytes(record) > this.#limitOf(record.topic).bytes)
    if (tooLarge === undefined) outputs = this.#boundOutputs(produced)
    else if (records > 1) {
      // Which record? Re-read this batch one record at a time (it is aborted: nothing of it is visible).
      if (open) {
        await withTimeout(open.abort(), this.#config.transactionTimeoutMs, 'abort')
        this.#producerClean = true
      }
      this.#isolateUntil = new Map(read.map((p) => [partitionKey(p.topic, p.partition), p.offset]))
      this.#emit({
        event: 'isolating-records',
        code: 'RS_RECORD_TOO_LARGE',
        topic: tooLarge.topic,
        bytes: recordBytes(tooLarge),
        limit: this.#limitOf(tooLarge.topic).bytes,
        records,
      })
      return undefined
    } else {
      // This record's state is too large to keep: it is dead-lettered with none of its effects (no
      // outputs, no state writes; the stores' overlays are dropped after the commit). Alone in its
      // transaction, so nothing else is held.
      outputs = [this.#stateTooLargeDeadLetter(first, tooLarge)]
      changelog.length = 0
      for (const store of this.#config.stores.values()) store.discard()
    }
    const { written } = await produce([...held, ...outputs, ...changelog])
    const checkpoints = new Map<string, Map<number, bigint>>()
    for (const { topic, partition } of changelog) {
      const end = written.get(partitionKey(topic, partition))
      if (end === undefined) continue
      const store = changelogStore.get(topic)!
      const map = checkpoints.get(store) ?? new Map<number, bigint>()
      map.set(partition, end)
      checkpoints.set(store, map)
    }
    return checkpoints
  }

  /**
   * Hop chaining ahead of the produce: the next round takes the outputs to internal partitions this
   * instance reads at the offsets they will land at (the partition's known log end: nothing buffered,
   * nothing unread), before they are produced; they then go out with the transaction's next produce,
   * one request for every round instead of one per hop. `#verifyChainedAhead` checks after that produce
   * that each landed exactly there; if another producer wrote first, the transaction aborts.
   * Returns the records chained (stamped with the timestamps their round reads), the rest, and the round.
   */
  #chainAhead(
    outputs: readonly SinkRecord[],
    expected: Map<string, ChainedAhead>,
    stamped: Map<SinkRecord, bigint>,
  ): { chained: SinkRecord[]; unchained: SinkRecord[]; batch: Batch | undefined } {
    const byPartition = new Map<string, SinkRecord[]>()
    const unchained: SinkRecord[] = []
    const chained: SinkRecord[] = []
    for (const record of outputs) {
      if (!this.#chainTopics.has(record.topic)) {
        unchained.push(record)
        continue
      }
      const key = partitionKey(record.topic, record.partition)
      const list = byPartition.get(key)
      if (list) list.push(record)
      else byPartition.set(key, [record])
    }
    const now = BigInt(Date.now())
    const records: SourceRecord[] = []
    const positions: TopicPartitionOffset[] = []
    let bytes = 0
    for (const [key, list] of byPartition) {
      const { topic, partition } = list[0]
      const from = this.#reader!.chainAhead(topic, partition, list.length)
      if (from === undefined) {
        unchained.push(...list)
        continue
      }
      const before = expected.get(key)
      expected.set(key, { topic, partition, from: before?.from ?? from, count: (before?.count ?? 0) + list.length })
      list.forEach((record, i) => {
        // What toMessage will produce, fixed now: the round reads the timestamp the broker stores.
        const timestamp = producedTimestamp(record, now)
        stamped.set(record, timestamp)
        chained.push(record)
        const read = readBack(record, from + BigInt(i), timestamp)
        bytes += batchBytes(read)
        records.push(read)
      })
      positions.push({ topic, partition, offset: from + BigInt(list.length) })
    }
    // Each partition's records keep their order: unchained ones of a partition never precede chained ones
    // (a partition with held unchained records has no known end, so nothing of it is chained ahead).
    return { chained, unchained, batch: records.length === 0 ? undefined : { records, bytes, positions } }
  }

  /**
   * After a produce: every partition chained ahead whose records it carried must have them exactly
   * where the chained round read them (first at `from`, contiguous). Otherwise throws
   * ChainedAheadConflict. Records written after them to the same partition are beyond the reader's
   * known end; so are those of any partition not chained ahead.
   */
  #verifyChainedAhead(
    expected: Map<string, ChainedAhead>,
    messages: readonly Message[],
    starts: ReadonlyMap<string, bigint>,
    written: ReadonlyMap<string, bigint>,
  ): void {
    const counts = new Map<string, number>()
    for (const m of messages) {
      const key = partitionKey(m.topic, m.partition!)
      counts.set(key, (counts.get(key) ?? 0) + 1)
    }
    const beyond = new Set(written.keys())
    for (const [key, { topic, partition, from, count }] of expected) {
      const start = starts.get(key)
      const end = written.get(key)
      if (start === undefined || end === undefined) continue
      const total = BigInt(counts.get(key) ?? 0)
      if (start !== from || end - start !== total)
        throw new ChainedAheadConflict({ topic, partition, expectedOffset: from, landedAt: start })
      expected.delete(key)
      this.#reader!.landed([key])
      if (total === BigInt(count)) beyond.delete(key)
    }
    this.#reader!.wroteUnchained(beyond)
  }

  /** Whether some output goes to an internal topic partition this instance reads (a chained round could take it). */
  #chainable(outputs: readonly SinkRecord[]): boolean {
    for (const record of outputs) if (this.#chainTopics.has(record.topic)) return true
    return false
  }

  /**
   * The next round: the records just written (`outputs`, which landed before `written`'s end offsets)
   * to internal partitions whose reader can take them now, as the reader would hand them out.
   */
  #chain(outputs: readonly SinkRecord[], { written, messages }: Produced): Batch | undefined {
    const byPartition = new Map<string, { record: SinkRecord; timestamp: bigint }[]>()
    outputs.forEach((record, i) => {
      if (!this.#chainTopics.has(record.topic)) return
      const key = partitionKey(record.topic, record.partition)
      const item = { record, timestamp: messages[i].timestamp as bigint }
      const list = byPartition.get(key)
      if (list) list.push(item)
      else byPartition.set(key, [item])
    })
    const records: SourceRecord[] = []
    const positions: TopicPartitionOffset[] = []
    let bytes = 0
    for (const [key, list] of byPartition) {
      const end = written.get(key)
      if (end === undefined) continue
      const { topic, partition } = list[0].record
      const from = end - BigInt(list.length)
      if (!this.#reader!.chain(topic, partition, from, end)) continue
      list.forEach(({ record, timestamp }, i) => {
        const read = readBack(record, from + BigInt(i), timestamp)
        bytes += batchBytes(read)
        records.push(read)
      })
      positions.push({ topic, partition, offset: end })
    }
    return records.length === 0 ? undefined : { records, bytes, positions }
  }

  /**
   * Flushes every store; retried with backoff until it succeeds (a committed batch is never un-flushed
   * by skipping). The stores flush concurrently (each partition has its own checkpoint, so no order
   * between them matters): their checks and writes go to the backing store together, not one store
   * after another.
   */
  async #flushStores(checkpoints: Map<string, Map<number, bigint>>): Promise<void> {
    const results = await Promise.allSettled(
      [...this.#config.stores].map(([name, store]) => this.#flushStore(name, store, checkpoints.get(name))),
    )
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  }

  async #flushStore(name: string, store: StateStore, given: Map<number, bigint> | undefined): Promise<void> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 5_000 })
    const cps = given ?? new Map<number, bigint>()
    for (;;) {
      try {
        // Writing this batch's overlay onto a store that lost its data would recreate the
        // partition with only these keys and a valid-looking checkpoint: check first, unless the
        // store's flush compares the checkpoints itself, atomically with the write (Redis: one
        // round trip per transaction fewer, and a retried flush that had applied is accepted).
        if (!store.flushComparesCheckpoints) await this.#verifyCheckpoints(name, store, cps.keys())
        await store.flush(cps)
        for (const [partition, offset] of cps) this.#checkpoints.set(`${name}:${partition}`, offset)
        return
      } catch (error) {
        const { recovery } = classifyError(error)
        if (recovery === 'rejoin') {
          // Another owner already wrote a newer checkpoint: our committed batch is in the changelog;
          // drop the overlay and re-assign (the generation has moved or is about to).
          this.#emit({ event: 'store-fenced', store: name, error: describeError(error) })
          store.discard()
          return
        }
        if (recovery !== 'retry') {
          // The batch is committed (its changelog records included); the restore after re-assignment applies it.
          store.discard()
          throw error
        }
        if (this.#stop.signal.aborted) throw error
        const delay = backoff.next()
        this.#emit({
          event: 'flush-retry',
          store: name,
          error: describeError(error),
          ...unavailableService(error),
          retryInMs: delay,
        })
        await sleep(delay, this.#stop.signal)
      }
    }
  }

  async #stage(stage: BatchStage): Promise<void> {
    await this.#config.onBatchStage?.(stage)
  }

  #limitOf(topic: string): RecordLimit {
    return this.#limits.get(topic) ?? recordLimit(this.#config.maxRecordBytes, undefined)
  }

  /**
   * Outputs larger than their topic takes (`maxRecordBytes`, or the topic's `max.message.bytes` when
   * lower) cannot be produced (the broker refuses them with MESSAGE_TOO_LARGE, and a retry fails the
   * same way forever): each is replaced by a dead letter
   * naming its topic, key and size, with a bounded excerpt of its value (never the value itself),
   * and the source record's position when the topology gave it. The partition moves on.
   */
  #boundOutputs(outputs: SinkRecord[]): SinkRecord[] {
    const c = this.#config
    let bounded: SinkRecord[] | undefined
    for (let i = 0; i < outputs.length; i++) {
      const record = outputs[i]
      const bytes = recordBytes(record)
      const limit = this.#limitOf(record.topic)
      if (bytes <= limit.bytes) {
        bounded?.push(record)
        continue
      }
      bounded ??= outputs.slice(0, i)
      const deadLetters = this.#topology.topics.find((t) => t.role === 'dead-letter')
      // A dead letter that carries its whole source record (400 KB of undecodable bytes) is itself too
      // large: it keeps its headers (code, reason, source position) and loses its value, never the partition.
      if (deadLetters !== undefined && record.topic === deadLetters.name) {
        bounded.push(trimmedDeadLetter(record, bytes, c.deadLetterExcerptBytes))
        continue
      }
      if (deadLetters === undefined)
        throw new RagstreamError(
          'RS_MESSAGE_TOO_LARGE',
          `a record for ${record.topic} (key ${keyExcerpt(record.key)}) is ${bytes} bytes, above ${limit.text}, and the topology has no dead-letter topic for it`,
          {
            context: { topic: record.topic, size: bytes },
            hint: 'raise maxRecordBytes (and the topic max.message.bytes)',
          },
        )
      const partitions = deadLetters.partitions ?? this.#resolved!.partitions
      bounded.push(
        tooLargeDeadLetter(record, bytes, {
          topic: deadLetters.name,
          partition: (record.source?.partition ?? record.partition) % partitions,
          limit,
          excerptBytes: c.deadLetterExcerptBytes,
          application: this.#topology.applicationId,
        }),
      )
      this.#stats.deadLettered++
      const source = record.source
      this.#emit({
        event: 'output-dead-lettered',
        code: 'RS_RECORD_TOO_LARGE',
        topic: record.topic,
        partition: record.partition,
        bytes,
        limit: limit.bytes,
        source: source ? { topic: source.topic, partition: source.partition, offset: source.offset } : undefined,
      })
    }
    return bounded ?? outputs
  }

  #newProducer(): Producer {
    const c = this.#config
    this.#producerClean = false
    this.#producer = new Producer({
      clientId: `${this.#transactionalId}-producer`,
      bootstrapBrokers: [...c.brokers],
      transactionalId: this.#transactionalId,
      idempotent: true,
      // InitProducerId must say "no current producer" (-1/-1, KIP-360): the client's default 0/0 makes
      // the coordinator answer PRODUCER_FENCED once the transactional id has a history.
      producerId: -1n,
      producerEpoch: -1,
      // Also the transaction timeout sent with InitProducerId.
      timeout: c.transactionTimeoutMs,
      // Right after a commit the coordinator may still be writing markers and answer the next
      // transaction's AddPartitionsToTxn with CONCURRENT_TRANSACTIONS: retry that quickly.
      retries: 12,
      retryDelay: (_client, _operation, attempt) => Math.min(2 ** attempt, 500),
    })
    return this.#producer
  }

  /**
   * Aborts what can be aborted, closes the producer and forgets it: the next transaction starts with
   * a new producer, which re-initialises the transactional id (and so settles any uncertain outcome).
   *
   * A producer whose `beginTransaction()` failed before InitProducerId answered (the broker went
   * down while a task initialised) keeps a half-open transaction and no producer id: reusing it
   * fails with "There is already an active transaction", and @platformatic/kafka 2.12's `abort()`
   * on it throws `TypeError: Cannot read properties of undefined (reading 'producerId')` from a
   * connection callback, outside any promise, which would crash the process. So such a producer is
   * never aborted (there is nothing on the broker to abort), only closed.
   */
  async #discardProducer(cause: unknown, classified = classifyError(cause)): Promise<void> {
    const producer = this.#producer
    this.#producer = undefined
    this.#producerClean = false
    if (!producer) return
    const transaction = producer.transaction
    const fenced = classified.code === 'RS_PRODUCER_FENCED'
    if (transaction && !transaction.completed && !fenced && producer.producerId !== undefined) {
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
    if (cause !== undefined) this.#emit({ event: 'producer-replaced', reason: describeError(cause) })
  }

  /**
   * (Re)assignment: read the committed offsets (stable) of the owned input partitions, restore every
   * store partition of the owned tasks from its changelog, and position the reader at the offsets.
   * Returns false when the generation moved meanwhile (the caller runs it again).
   */
  async #assign(): Promise<boolean> {
    const consumer = this.#consumer!
    const deadline = Date.now() + this.#config.rebalanceTimeoutMs
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
    for (const store of this.#config.stores.values()) store.discard()
    this.#emit({ event: 'assigned', generationId, tasks })

    // Initialise the transactional id before reading offsets and restoring: that fences a previous
    // incarnation and aborts its open transaction, which would otherwise hold back the changelogs'
    // LSO and keep its pending offsets unstable until the transaction timeout.
    // A failure here leaves the producer unclean, so the loop's failure path replaces it.
    if (!this.#producer || !this.#producerClean) {
      if (this.#producer) await this.#discardProducer(undefined)
      const producer = this.#newProducer()
      const transaction = await withTimeout(
        producer.beginTransaction(),
        this.#config.transactionTimeoutMs,
        'initialise transactional id',
      )
      await transaction.cancel()
      this.#producerClean = true
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

    // Store partitions whose Redis checkpoint is their changelog's end, found in one pass (usually
    // all of a moved task's: Redis is shared); the others are restored one by one. If the pass
    // fails, every store partition goes through the restorer, which retries and names the failure.
    const current = await currentCheckpoints(consumer, this.#config.stores, this.#resolved!.changelogs, tasks).catch(
      () => new Map<string, bigint>(),
    )
    if (consumer.generationId !== generationId) return false
    for (const [name, store] of this.#config.stores) {
      const topic = this.#resolved!.changelogs.get(name)!
      for (const partition of tasks) {
        const checkpoint = current.get(`${name}:${partition}`)
        if (checkpoint !== undefined) {
          this.#checkpoints.set(`${name}:${partition}`, checkpoint)
          this.#stats.restores++
          this.#emit({
            event: 'restored',
            store: name,
            partition,
            from: checkpoint,
            to: checkpoint,
            records: 0,
            cleared: false,
          })
          continue
        }
        const onStart = ({ from, to }: { from: bigint; to: bigint }): void => {
          if (to > from) this.#emit({ event: 'restoring', store: name, partition, from, to })
        }
        const result = await this.#restorer!.restore({ store, partition, topic, onStart, signal: this.#stop.signal })
        this.#checkpoints.set(`${name}:${partition}`, result.to)
        this.#stats.restores++
        // Every store partition of a new assignment reports how it was restored, also when its
        // Redis copy was current (records 0): a task that moved says it moved no data. Every
        // 'restoring' is followed by a 'restored', so gauges of remaining records return to 0.
        this.#emit({
          event: 'restored',
          store: name,
          partition,
          from: result.from,
          to: result.to,
          records: result.restored,
          cleared: result.cleared,
        })
        if (consumer.generationId !== generationId) return false
      }
    }

    const positions: TopicPartitionOffset[] = []
    const outOfRange: string[] = []
    for (const { topic, partition } of owned) {
      const key = partitionKey(topic, partition)
      const reset = this.#reader!.takeOutOfRange(key)
      if (reset) outOfRange.push(key)
      const offset = reset ? -1n : (committed.get(key) ?? -1n)
      positions.push({ topic, partition, offset: offset >= 0n ? offset : await this.#resetOffset(topic, partition) })
    }
    if (outOfRange.length > 0)
      this.#emit({ event: 'offset-out-of-range', partitions: outOfRange, policy: this.#config.autoOffsetReset })
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
    const latest = this.#config.autoOffsetReset === 'latest'
    const offsets = await this.#consumer!.listOffsets({
      topics: [topic],
      partitions: { [topic]: [partition] },
      timestamp: latest ? ListOffsetTimestamps.LATEST : ListOffsetTimestamps.EARLIEST,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
    })
    const offset = offsets.get(topic)?.[partition]
    if (offset === undefined) throw new Error(`no ${latest ? 'latest' : 'earliest'} offset for ${topic}:${partition}`)
    return offset
  }

  async #shutdown(): Promise<void> {
    await this.#discardProducer(undefined)
    await withTimeout(this.#restorer?.close() ?? Promise.resolve(), 10_000, 'close restorer').catch(() => {})
    await withTimeout(this.#purger?.close() ?? Promise.resolve(), 10_000, 'close purger').catch(() => {})
    if (this.#consumer) {
      if (!this.#config.leaveGroupOnStop) await this.#stayInGroup(this.#consumer)
      await withTimeout(this.#consumer.close(true), 10_000, 'leave group').catch(() => {})
    }
    for (const store of this.#config.stores.values()) await store.close().catch(() => {})
    this.#running = false
    this.#emit({ event: 'stopped', ...this.#stats })
  }

  /**
   * A static member stops without a LeaveGroup, as Kafka's Java consumer does: its partitions wait
   * for it (up to the session timeout) instead of moving, so a restart moves nothing.
   * @platformatic/kafka 2.12 sends LeaveGroup on close() for static members too; `leaveGroup()` with
   * no member id stops the heartbeat and sends nothing, and close() then only closes connections.
   */
  async #stayInGroup(consumer: Consumer): Promise<void> {
    consumer.memberId = null
    const stopped = new Promise<void>((resolve) => consumer.leaveGroup(true, () => resolve()))
    await withTimeout(stopped, 5_000, 'stop heartbeats').catch(() => {})
  }

  #emit(event: RuntimeEvent): void {
    this.#observe(event)
  }
}

/* Changelog record: key = the store key as UTF-8, value = the stored bytes (null = tombstone), partition = the store partition = the task. */
function changelogSinkRecord(topic: string, record: ChangelogRecord): SinkRecord {
  return { topic, partition: record.partition, key: Buffer.from(record.key, 'utf8'), value: record.value }
}

/** A record this instance writes, as a chained round reads it at `offset` (what a fetch would hand out). */
function readBack(record: SinkRecord, offset: bigint, timestamp: bigint): SourceRecord {
  return {
    topic: record.topic,
    partition: record.partition,
    offset,
    timestamp,
    key: record.key,
    value: record.value,
    headers: record.headers && record.headers.size > 0 ? new Map(record.headers) : NO_HEADERS,
  }
}

/** The timestamp a record is produced with at `now` (see toMessage). */
function producedTimestamp(record: SinkRecord, now: bigint): bigint {
  return record.timestamp !== undefined && record.timestamp >= 0n && record.timestamp <= now ? record.timestamp : now
}

function toMessage(record: SinkRecord, now: bigint): MessageToProduce<Buffer, Buffer, Buffer, Buffer> {
  const message: MessageToProduce<Buffer, Buffer, Buffer, Buffer> = { topic: record.topic, partition: record.partition }
  if (record.key !== null) message.key = record.key
  if (record.value !== null) message.value = record.value
  // Event time travels as the record's timestamp (Kafka Streams does the same), so internal topics carry
  // it on. One in the future (a source clock ahead of ours) is produced as now: the broker refuses
  // timestamps beyond message.timestamp.after.max.ms (1 hour by default), and retrying would not help.
  // Always set (the client would stamp its own clock otherwise): a chained round reads it back.
  message.timestamp = producedTimestamp(record, now)
  if (record.headers && record.headers.size > 0) {
    const headers = new Map<Buffer, Buffer>()
    for (const [name, value] of record.headers) headers.set(Buffer.from(name), value)
    message.headers = headers
  }
  return message
}

/** The largest record one topic takes, and how to say so in an error or dead letter. */
interface RecordLimit {
  readonly bytes: number
  readonly text: string
}

/** Header of a v2 record batch: what a batch of one record costs beyond that record against max.message.bytes. */
const RECORD_BATCH_HEADER = 61

/** maxRecordBytes, or the topic's max.message.bytes when that is the lower bound (a batch of one record must fit). */
function recordLimit(maxRecordBytes: number, maxMessageBytes: number | undefined): RecordLimit {
  if (maxMessageBytes === undefined || maxMessageBytes - RECORD_BATCH_HEADER >= maxRecordBytes)
    return { bytes: maxRecordBytes, text: `maxRecordBytes ${maxRecordBytes}` }
  return { bytes: maxMessageBytes - RECORD_BATCH_HEADER, text: `its topic's max.message.bytes ${maxMessageBytes}` }
}

/** Size of a record as the broker counts it against max.message.bytes, generously (record overhead included). */
function recordBytes(record: SinkRecord): number {
  let bytes = 64 + (record.key?.length ?? 0) + (record.value?.length ?? 0)
  if (record.headers) for (const [name, value] of record.headers) bytes += Buffer.byteLength(name) + value.length + 8
  return bytes
}

const KEY_EXCERPT = 64

function keyExcerpt(key: Buffer | null): string {
  if (key === null) return 'null'
  const text = key.subarray(0, KEY_EXCERPT).toString('utf8')
  return `${JSON.stringify(text)}${key.length > KEY_EXCERPT ? ` (${key.length} bytes)` : ''}`
}

function stateRecordTooLarge(record: SinkRecord, bytes: number, limit: RecordLimit): RagstreamError {
  return new RagstreamError(
    'RS_MESSAGE_TOO_LARGE',
    `a state-store value for changelog ${record.topic} partition ${record.partition} (key ${keyExcerpt(record.key)}) is ${bytes} bytes, above ${limit.text}`,
    {
      context: { topic: record.topic, partition: record.partition, size: bytes },
      hint: 'a stored value cannot be dead-lettered: keep stored rows small (drop large fields before the table), or raise maxRecordBytes and the changelog max.message.bytes',
    },
  )
}

/* Dead letter for an output too large to produce: key = the output's key (bounded), value = null;
 * headers: the standard dead-letter headers (source position when known) plus the output's topic,
 * size and a bounded excerpt of its value. */
/** A dead letter over maxRecordBytes: its headers, a bounded excerpt of its value, and its size; no value. */
function trimmedDeadLetter(record: SinkRecord, bytes: number, excerptBytes: number): SinkRecord {
  const headers = new Map(record.headers ?? [])
  headers.set(DEAD_LETTER_HEADERS.outputBytes, Buffer.from(String(bytes)))
  headers.set(DEAD_LETTER_HEADERS.excerpt, (record.value ?? Buffer.alloc(0)).subarray(0, excerptBytes))
  return { ...record, key: record.key !== null && record.key.length <= 1024 ? record.key : null, value: null, headers }
}

function tooLargeDeadLetter(
  record: SinkRecord,
  bytes: number,
  to: { topic: string; partition: number; limit: RecordLimit; excerptBytes: number; application: string },
): SinkRecord {
  const source = record.source
  const headers = new Map<string, Buffer>([
    [DEAD_LETTER_HEADERS.code, Buffer.from('RS_RECORD_TOO_LARGE')],
    [
      DEAD_LETTER_HEADERS.message,
      Buffer.from(
        `output for ${record.topic} (key ${keyExcerpt(record.key)}) is ${bytes} bytes, above ${to.limit.text}`,
      ),
    ],
    [
      DEAD_LETTER_HEADERS.hint,
      Buffer.from(
        "shrink the record (smaller chunks, fewer metadata fields) or raise maxRecordBytes and the topic's max.message.bytes",
      ),
    ],
    [DEAD_LETTER_HEADERS.outputTopic, Buffer.from(record.topic)],
    [DEAD_LETTER_HEADERS.outputBytes, Buffer.from(String(bytes))],
    [DEAD_LETTER_HEADERS.excerpt, (record.value ?? Buffer.alloc(0)).subarray(0, to.excerptBytes)],
    [DEAD_LETTER_HEADERS.node, Buffer.from('runtime')],
    [DEAD_LETTER_HEADERS.failedAt, Buffer.from(String(Date.now()))],
    [DEAD_LETTER_HEADERS.application, Buffer.from(to.application)],
  ])
  if (source) {
    headers.set(DEAD_LETTER_HEADERS.topic, Buffer.from(source.topic))
    headers.set(DEAD_LETTER_HEADERS.partition, Buffer.from(String(source.partition)))
    headers.set(DEAD_LETTER_HEADERS.offset, Buffer.from(String(source.offset)))
    headers.set(DEAD_LETTER_HEADERS.timestamp, Buffer.from(String(source.timestamp)))
  }
  const input = record.input
  if (input) {
    if (source !== undefined && source.key !== null && source.key.length <= ORIGIN_KEY_MAX_BYTES)
      headers.set(DEAD_LETTER_HEADERS.sourceKey, source.key)
    headers.set(DEAD_LETTER_HEADERS.inputTopic, Buffer.from(input.topic))
    headers.set(DEAD_LETTER_HEADERS.inputPartition, Buffer.from(String(input.partition)))
    headers.set(DEAD_LETTER_HEADERS.inputOffset, Buffer.from(String(input.offset)))
  }
  const key = record.key !== null && record.key.length <= 1024 ? record.key : (source?.key ?? null)
  return {
    topic: to.topic,
    partition: to.partition,
    key: key !== null && key.length <= 1024 ? key : null,
    value: null,
    headers,
  }
}
