/**
 * The pgvector sink: materializes a topology's chunk topic into its Postgres table, exactly once.
 *
 * Kafka group membership only decides which partitions this instance works on; the source of truth
 * for positions is the offsets table in Postgres. On every (re)assignment the instance claims its
 * partitions with a fresh owner token and reads from the stored offsets; every batch then commits
 * rows and next offsets together behind a compare-and-set fence (see batch-writer.ts). Kafka group
 * offsets are committed for lag monitoring only (at most once a second) and are never read back.
 *
 * Records are fetched with read_committed; aborted transactional batches are also filtered here
 * (defence in depth, and the client keeps batches whose abort marker lies past the response).
 */
import { guardedObserver } from '../observability/guarded-observer.ts'
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { Consumer, ListOffsetTimestamps } from '@platformatic/kafka'
import { createSchemaRegistry } from '../serde/wire.ts'
import { auditKey } from '../security/audit-auth.ts'
import {
  classifyError,
  RagstreamError,
  ServiceUnavailableError,
  unavailableService,
  type UnavailableService,
} from '../errors.ts'
import { redactUrl } from '../config/endpoints.ts'
import type { SinkConfig } from './config.ts'
import { ChunkDecoder, type RawChunkRecord, type RejectRow } from './chunk-codec.ts'
import { BatchWriter, buildBatch, claimPartitions, type PartitionProgress, type SinkBatch } from './batch-writer.ts'
import { commitGroupOffsets, type TopicPartitionOffset } from '../runtime/group-offsets.ts'
import { committedRecords, fetchUnfiltered } from '../runtime/read-committed.ts'

const READ_COMMITTED = 1
/** How long #close waits for the group to be left and Postgres to say goodbye before it lets go. */
const CLOSE_GRACE_MS = 5_000
/** The longest fetch wait while nothing is pending (a fetch returns as soon as a record is committed). */
const IDLE_FETCH_WAIT_MS = 500
/**
 * How often partitions locked by another session are claimed again: the previous owner's batch in
 * flight after a rebalance (taken as soon as it commits or rolls back), or a frozen earlier owner.
 */
const PENDING_CLAIM_RETRY_MS = 100
/** The fewest records a time-capped batch may hold (see batchMaxMs), and the first batch's cap before any is timed. */
const MIN_CAPPED_BATCH = 100
/** Weight of the latest batch in the sink's running per-record write time. */
const WRITE_RATE_WEIGHT = 0.3
/**
 * Kafka group offsets (lag monitoring only) are committed at most this often: the latest batch's
 * follow within it. One commit per batch was a Kafka round trip per lone change.
 */
const GROUP_COMMIT_INTERVAL_MS = 1_000

/** Thrown into run() by stop(): whatever it was awaiting is abandoned (nothing uncommitted matters). */
class SinkStopped extends Error {
  constructor(step: string) {
    super(`stopped while waiting for ${step}`)
    this.name = 'SinkStopped'
  }
}

/** Resolves with `promise`, or after `ms` with `undefined`; the timer never keeps the process alive. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms).unref())),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** What the sink reports; `writer` is set on every event of writer i of a process with several (sink-writers.ts). */
export type SinkLogEvent = { readonly writer?: number } & (
  | { readonly event: 'started'; readonly instance: string; readonly topic: string; readonly table: string }
  | {
      readonly event: 'assigned'
      readonly partitions: readonly number[]
      readonly offsets: Readonly<Record<string, string>>
    }
  | { readonly event: 'batch-begin'; readonly records: number; readonly partitions: readonly number[] }
  | {
      readonly event: 'batch-committed'
      readonly upserted: number
      readonly deleted: number
      readonly audits: number
      readonly rejects: number
      readonly alreadyCommitted: boolean
      readonly offsets: Readonly<Record<string, string>>
      /** When COMMIT returned (epoch ms): freshness is measured to here, not to the rows' `visible_at`. */
      readonly visibleAtMs?: number
      /**
       * In-process observers only (a symbol key: JSON logs leave it out): per topology version, how
       * long each upserted row took from its source change (`source_ts`) to this commit, in ms, and
       * from its change's append to the source topic (`source_appended_at`) to this commit.
       */
      readonly [COMMITTED_FRESHNESS]?: readonly CommittedFreshness[]
    }
  | { readonly event: 'fenced'; readonly code: 'RS_SINK_FENCED'; readonly partitions: readonly number[] }
  /** The group rebalances (a member joined or left): an `assigned` event follows once it has settled. */
  | { readonly event: 'rebalancing' }
  /**
   * `sink --writers N --instance-id X` removed static members of X it does not run (`X-w<i>` for
   * i ≥ N, or X when N > 1): left by a run with more writers, their partitions move at once.
   */
  | { readonly event: 'writers-removed'; readonly instanceIds: readonly string[] }
  /** Reading or changing the group for `writers-removed` failed: those members leave at their session timeout. */
  | { readonly event: 'writers-remove-failed'; readonly error: string }
  /**
   * Assigned partitions whose offsets row another session holds locked (an earlier owner frozen inside
   * its transaction): claimed again every second until Postgres ends that session.
   */
  | { readonly event: 'claim-pending'; readonly partitions: readonly number[] }
  /**
   * A transient failure, retried after `delayMs`. When a service did not answer, `code` is
   * RS_SERVICE_UNAVAILABLE and `service`, `address` (password masked) and `hint` say which and where.
   */
  | (Partial<UnavailableService> & {
      readonly event: 'retry'
      readonly what: string
      readonly attempt: number
      readonly delayMs: number
      readonly error: string
      readonly code?: 'RS_SERVICE_UNAVAILABLE'
    })
  /** The idle Postgres connection died (server restart, connection killed); the next batch opens a new one. */
  | (Partial<UnavailableService> & {
      readonly event: 'connection-lost'
      readonly what: 'postgres'
      readonly error: string
      readonly code?: 'RS_SERVICE_UNAVAILABLE'
    })
  | { readonly event: 'stopped' }
)

/** Key of the per-row freshness a `batch-committed` event carries for in-process observers (src/ops/instrument.ts). */
export const COMMITTED_FRESHNESS: unique symbol = Symbol('ragstream.sink.committedFreshness')

/** The freshness of one committed batch's rows of one topology version: commit − source change, in ms. */
export interface CommittedFreshness {
  readonly topology: string
  readonly version: string
  readonly lagsMs: readonly number[]
  /**
   * Ragstream's part of it, for the rows that know when their change reached its source topic:
   * commit − `source_appended_at`, in ms (rows without it are left out).
   */
  readonly appendLagsMs: readonly number[]
}

export interface PgvectorSinkOptions {
  readonly config: SinkConfig
  /** The sink role's connection URL (never the owner's: the sink runs DML only). */
  readonly postgresUrl: string
  readonly kafkaBrokers: readonly string[]
  readonly schemaRegistryUrl: string
  readonly log?: (event: SinkLogEvent) => void
  /** The key DELETION_APPLIED events are signed with; default `auditKey()` (src/security/audit-auth.ts). */
  readonly auditKey?: Buffer
  /**
   * This writer's index among the writers of one process (src/sink/sink-writers.ts): it names the
   * Kafka client (`ragstream-sink-<topology>-w<i>`) and the Postgres application_name, so `status`
   * and pg_stat_activity tell the writers apart.
   */
  readonly writer?: number
}

interface PartitionState {
  readonly ownerToken: string
  /** The offset stored in Postgres as this instance last read or wrote it: the fence's expected value. */
  committed: bigint
  /** The next offset to fetch (ahead of `committed` while records are buffered). */
  position: bigint
  records: RawChunkRecord[]
  /** The partition's last stable offset at its latest fetch: read up to it = caught up (adaptive batch close). */
  stableOffset?: bigint
}

/** Retriable: connection-level failures, server shutdown/restart, serialization conflicts. */
export function isTransientPostgresError(error: unknown): boolean {
  const e = error as { code?: string; message?: string }
  const code = e?.code ?? ''
  if (/^(08|57P|53|40001|40P01|55P03)/.test(code)) return true
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code))
    return true
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable|terminating connection/i.test(
    e?.message ?? '',
  )
}

/** A Postgres failure that means the server is not there (down, restarting, refusing connections), not a conflict. */
export function isPostgresUnavailable(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code ?? ''
  return isTransientPostgresError(error) && !/^(40001|40P01|55P03)$/.test(code)
}

export class PgvectorSink {
  readonly #config: SinkConfig
  readonly #postgresUrl: string
  readonly #kafkaBrokers: readonly string[]
  readonly #schemaRegistryUrl: string
  readonly #log: (event: SinkLogEvent) => void
  readonly #consumer: Consumer
  readonly #decoder: ChunkDecoder
  readonly #writer: BatchWriter
  readonly #instance: string
  /** `-w<i>` for writer i of a process with several, else empty. */
  readonly #writerLabel: string
  readonly #partitions = new Map<number, PartitionState>()
  /** Assigned but not claimed yet (their offsets row is locked by another session). */
  #pendingClaims: { partition: number; initial: bigint }[] = []
  #pendingSince = 0
  #client: pg.Client | null = null
  #assignmentChanged = true
  #rebalancing = false
  #groupFailed = false
  /** Running mean of one record's share of a batch's write time, in ms (undefined before a batch is timed). */
  #msPerRecord: number | undefined
  #stopping = false
  /** When the oldest unflushed progress was fetched; null when nothing is pending. */
  #batchStartedAt: number | null = null
  /** Next offsets committed to Postgres but not yet to the Kafka group (lag monitoring), by partition. */
  readonly #groupOffsets = new Map<number, bigint>()
  #groupCommittedAt = 0
  #groupCommitTimer: NodeJS.Timeout | undefined
  readonly #stopped: AbortController = new AbortController()
  /** What run() is awaiting right now, for the shutdown deadline's message. */
  #step = 'starting'

  constructor(options: PgvectorSinkOptions) {
    this.#config = options.config
    this.#postgresUrl = options.postgresUrl
    this.#kafkaBrokers = options.kafkaBrokers
    this.#schemaRegistryUrl = options.schemaRegistryUrl
    const { log, writer } = options
    this.#log = guardedObserver(
      "the sink's log callback",
      writer === undefined || log === undefined ? log : (event: SinkLogEvent) => log({ ...event, writer }),
    )
    this.#instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`
    const c = options.config
    this.#writerLabel = options.writer === undefined ? '' : `-w${options.writer}`
    this.#consumer = new Consumer({
      clientId: `ragstream-sink-${c.topology}${this.#writerLabel}`,
      groupId: c.groupId,
      bootstrapBrokers: [...options.kafkaBrokers],
      isolationLevel: READ_COMMITTED,
      sessionTimeout: c.sessionTimeoutMs,
      rebalanceTimeout: c.sessionTimeoutMs,
      // A member learns of a rebalance (another member joined or left) only at its next heartbeat,
      // and a leaver's partitions stay idle until then: a tenth of the session keeps that short.
      heartbeatInterval: Math.max(300, Math.floor(c.sessionTimeoutMs / 10)),
      ...(c.instanceId ? { groupInstanceId: c.instanceId } : {}),
      autocommit: false,
      retries: 5,
      retryDelay: 500,
    })
    this.#consumer.on('consumer:group:join', () => {
      this.#assignmentChanged = true
      this.#rebalancing = false
    })
    this.#consumer.on('consumer:group:rebalance', () => {
      if (this.#rebalancing || this.#stopping) return
      this.#rebalancing = true
      this.#log({ event: 'rebalancing' })
    })
    // The client reports a failed background rejoin (after a heartbeat saw a rebalance) as an
    // 'error' event; unhandled, it would crash the process. Rejoin from the loop instead. While
    // stopping (the client was closed under an abandoned join) there is nothing left to do.
    this.#consumer.on('error', (error: Error) => {
      if (this.#stopping) return
      this.#groupFailed = true
      this.#log(this.#retryEvent('kafka group', 1, 0, error))
    })
    this.#decoder = new ChunkDecoder(createSchemaRegistry(options.schemaRegistryUrl), c.dims, {
      maxKeyBytes: c.maxKeyBytes,
      auditKey: options.auditKey ?? auditKey(),
    })
    this.#writer = new BatchWriter(c.names, this.#instance)
  }

  get instance(): string {
    return this.#instance
  }

  /** What the sink is waiting for right now (e.g. `postgres batch`, `kafka fetch`, `closing: leave group`). */
  get step(): string {
    return this.#step
  }

  /** Runs until stop() is called or a non-retriable error happens (then rejects with it). */
  async run(): Promise<void> {
    try {
      await this.#checkTable()
      this.#consumer.topics.track(this.#config.topic)
      await this.#withRetry('kafka join', () => this.#consumer.joinGroup({}))
      this.#log({
        event: 'started',
        instance: this.#instance,
        topic: this.#config.topic,
        table: this.#config.names.chunkTable,
      })
      while (!this.#stopping) {
        if (this.#groupFailed) {
          this.#groupFailed = false
          this.#assignmentChanged = true
          await this.#withRetry('kafka rejoin', () => this.#consumer.joinGroup({}))
        }
        if (this.#assignmentChanged) await this.#reassign()
        if (this.#pendingClaims.length > 0 && Date.now() - this.#pendingSince >= PENDING_CLAIM_RETRY_MS)
          await this.#claim(this.#pendingClaims)
        if (this.#partitions.size === 0) {
          this.#step = 'an assignment'
          await sleep(100, undefined, { signal: this.#stopped.signal }).catch(() => {})
          continue
        }
        // Nothing pending: wait for records (the fetch returns as soon as one is committed).
        const started = this.#batchStartedAt
        const lingerLeft = started === null ? IDLE_FETCH_WAIT_MS : this.#config.batchLingerMs - (Date.now() - started)
        if (this.#buffered() < this.#batchCap() && lingerLeft > 0 && !this.#closesNow()) {
          // While claims are pending, the fetch waits no longer than their retry interval: the
          // partitions moved here are claimed as soon as their previous owner's transaction ends.
          const longest = this.#pendingClaims.length > 0 ? PENDING_CLAIM_RETRY_MS : IDLE_FETCH_WAIT_MS
          await this.#fetch(Math.min(Math.max(lingerLeft, 10), longest))
        }
        if (this.#assignmentChanged || this.#stopping || this.#batchStartedAt === null) continue
        const due =
          this.#buffered() >= this.#batchCap() ||
          Date.now() - this.#batchStartedAt >= this.#config.batchLingerMs ||
          this.#closesNow()
        if (due && this.#hasProgress()) await this.#flush()
      }
    } catch (error) {
      // Stopping abandons retries and in-flight Kafka and Postgres calls; what was not committed is
      // read again by the next owner (an abandoned Postgres transaction either committed, offsets
      // included, or rolls back when its connection goes).
      if (!this.#stopping) throw error
    } finally {
      await this.#close()
    }
  }

  /**
   * Makes run() return promptly, whatever it is waiting for (a group join or rejoin, a fetch, a
   * Postgres batch, a retry's backoff): the wait is abandoned, the group left and the connections
   * closed, each within a few seconds. Buffered, uncommitted records are read again by the next owner.
   */
  stop(): void {
    this.#stopping = true
    this.#stopped.abort()
  }

  /**
   * Awaits `operation` unless stop() comes first (then throws SinkStopped). The abandoned promise
   * settles on its own (its connection is closed by #close) and is never left unhandled.
   */
  async #unlessStopped<T>(step: string, operation: () => Promise<T>): Promise<T> {
    if (this.#stopping) throw new SinkStopped(step)
    this.#step = step
    const pending = operation()
    pending.catch(() => {})
    const signal = this.#stopped.signal
    let onAbort: (() => void) | undefined
    try {
      return await Promise.race([
        pending,
        new Promise<never>((_, reject) =>
          signal.addEventListener('abort', (onAbort = () => reject(new SinkStopped(step))), { once: true }),
        ),
      ])
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort)
    }
  }

  async #close(): Promise<void> {
    // Leaving the group lets the others take the partitions at once; if the coordinator does not
    // answer in time (e.g. a JoinGroup of a rebalance still occupies the connection), the client's
    // connections are closed under it and the session timeout does the same later: nothing of the
    // client outlives the sink, so a stopped process exits.
    this.#step = 'closing: leave group'
    const consumer = this.#consumer
    clearTimeout(this.#groupCommitTimer)
    this.#groupCommitTimer = undefined
    // The last batches' group offsets, so lag tools see where this instance stopped (best effort).
    if (this.#groupOffsets.size > 0)
      await within(
        commitGroupOffsets(consumer, this.#takeGroupOffsets()).catch(() => {}),
        1_000,
      )
    // A failed close (e.g. the LeaveGroup answered with an error mid-rebalance) leaves the client
    // open, heartbeating and rejoining: try again while the grace lasts.
    const graceEnds = Date.now() + CLOSE_GRACE_MS
    let closed: boolean | undefined = false
    while (closed === false && Date.now() < graceEnds) {
      closed = await within(
        consumer.close(true).then(
          () => true,
          () => false,
        ),
        graceEnds - Date.now(),
      )
      if (closed === false) await sleep(100)
    }
    // A closed pool never reopens: the pending join fails, and no heartbeat or rejoin keeps the
    // process alive until a command's shutdown deadline ends it with exit 1.
    if (closed !== true)
      await within(new Promise<void>((resolve) => consumer.connections.close(() => resolve())), 1_000)
    const client = this.#client
    this.#client = null
    if (client) {
      this.#step = 'closing: postgres'
      // end() waits for the server, which does not read the goodbye while a statement (e.g. one
      // waiting on a lock) runs: then the socket is destroyed, and the server rolls the transaction back.
      const ended = await within(
        client.end().then(
          () => true,
          () => false,
        ),
        CLOSE_GRACE_MS,
      )
      if (!ended) (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy()
    }
    this.#step = 'stopped'
    this.#log({ event: 'stopped' })
  }

  /**
   * Adaptive batch close: something is pending and every partition has been read up to its last
   * stable offset, so waiting longer would only add latency. Under load the batch is what arrived
   * while the previous transaction ran, so it grows with the rate without any timer.
   */
  #closesNow(): boolean {
    if (this.#config.batchWait !== 'adaptive' || this.#batchStartedAt === null) return false
    for (const p of this.#partitions.values())
      if (p.stableOffset === undefined || p.position < p.stableOffset) return false
    return true
  }

  /**
   * Commits the group offsets of the batches written since the last commit, at most once per
   * GROUP_COMMIT_INTERVAL_MS (a timer commits what a burst's last batches left). Lag monitoring only:
   * failures (e.g. a zombie's stale generation) change nothing, and the next commit carries on.
   */
  #commitGroupOffsets(): void {
    if (this.#groupCommitTimer !== undefined || this.#groupOffsets.size === 0 || this.#stopping) return
    const wait = this.#groupCommittedAt + GROUP_COMMIT_INTERVAL_MS - Date.now()
    if (wait > 0) {
      this.#groupCommitTimer = setTimeout(() => {
        this.#groupCommitTimer = undefined
        this.#commitGroupOffsets()
      }, wait).unref()
      return
    }
    this.#groupCommittedAt = Date.now()
    commitGroupOffsets(this.#consumer, this.#takeGroupOffsets()).catch(() => {})
  }

  /** The group offsets waiting to be committed; none wait after. */
  #takeGroupOffsets(): TopicPartitionOffset[] {
    const topic = this.#config.topic
    const offsets = [...this.#groupOffsets].map(([partition, offset]) => ({ topic, partition, offset }))
    this.#groupOffsets.clear()
    return offsets
  }

  /**
   * The most records the next batch takes: what the sink wrote in `batchMaxMs` at its recent rate
   * (at least MIN_CAPPED_BATCH, at most `batchMaxRecords`). A batch's transaction holds its
   * partitions' offsets rows locked, and a partition the group moves to another sink waits for it:
   * the cap bounds that wait (and a backlog's batches) by time instead of by count alone.
   */
  #batchCap(): number {
    const { batchMaxRecords, batchMaxMs } = this.#config
    const timed = this.#msPerRecord === undefined ? MIN_CAPPED_BATCH : Math.floor(batchMaxMs / this.#msPerRecord)
    return Math.min(batchMaxRecords, Math.max(MIN_CAPPED_BATCH, timed))
  }

  /** Folds a committed batch's write time into the per-record mean (batches too small to say much are skipped). */
  #timed(records: number, ms: number): void {
    if (records < 10) return
    const perRecord = ms / records
    this.#msPerRecord =
      this.#msPerRecord === undefined
        ? perRecord
        : this.#msPerRecord + WRITE_RATE_WEIGHT * (perRecord - this.#msPerRecord)
  }

  #buffered(): number {
    let n = 0
    for (const p of this.#partitions.values()) n += p.records.length
    return n
  }

  #hasProgress(): boolean {
    for (const p of this.#partitions.values()) if (p.position > p.committed) return true
    return false
  }

  async #pg(): Promise<pg.Client> {
    if (this.#client) return this.#client
    const client = new pg.Client({
      connectionString: this.#postgresUrl,
      application_name: `ragstream-sink ${this.#config.topology}${this.#writerLabel}`,
      // A sink frozen mid-batch loses its session (and its row locks) after this long; nothing the
      // sink does waits for a lock longer than lock_timeout (55P03 is retried).
      idle_in_transaction_session_timeout: this.#config.idleInTransactionTimeoutMs,
      lock_timeout: this.#config.lockTimeoutMs,
    })
    client.on('error', (error: Error) => {
      // A dead connection is noticed by the next query, which fails and is retried on a new client.
      if (this.#client !== client) return
      this.#client = null
      if (!this.#stopping) {
        const named = this.#named('postgres', error)
        this.#log({ event: 'connection-lost', what: 'postgres', error: named.message, ...serviceFields(named) })
      }
    })
    try {
      await client.connect()
    } catch (error) {
      await client.end().catch(() => {})
      throw error
    }
    this.#client = client
    return client
  }

  #dropClient(): void {
    const client = this.#client
    this.#client = null
    client?.end().catch(() => {})
  }

  /** Retries transient failures (Postgres down or restarting, connection killed) with capped exponential backoff; nothing is skipped. */
  async #withRetry<T>(
    what: string,
    fn: () => Promise<T>,
    transient: (error: unknown) => boolean = () => true,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#unlessStopped(what, fn)
      } catch (error) {
        if (this.#stopping || !transient(error)) throw error
        const delayMs = Math.min(5000, 100 * 2 ** Math.min(attempt - 1, 6))
        this.#log(this.#retryEvent(what, attempt, delayMs, error))
        if (what.startsWith('postgres')) this.#dropClient()
        await this.#pause(`${what} retry`, delayMs)
      }
    }
  }

  /**
   * A failure of the sink's own Postgres connection, Kafka consumer or schema-registry client that
   * means the service did not answer, as that service at its address (the URL's password masked);
   * anything else as it is.
   */
  #named(what: string, error: unknown): Error {
    const plain = error instanceof Error ? error : new Error(String(error))
    if (error instanceof RagstreamError) return error
    if (what.startsWith('postgres') && isPostgresUnavailable(error))
      return new ServiceUnavailableError('PostgreSQL', redactUrl(this.#postgresUrl), plain)
    if (what.startsWith('kafka') && classifyError(error).code === 'RS_SERVICE_UNAVAILABLE')
      return new ServiceUnavailableError('Kafka', this.#kafkaBrokers.join(','), plain)
    // Whatever fails fetching a writer schema (an unknown id is a reject, not an error) is the registry's.
    if (what === 'schema registry')
      return new ServiceUnavailableError('the schema registry', redactUrl(this.#schemaRegistryUrl), plain)
    return plain
  }

  #retryEvent(what: string, attempt: number, delayMs: number, error: unknown): SinkLogEvent {
    const named = this.#named(what, error)
    return { event: 'retry', what, attempt, delayMs, error: named.message, ...serviceFields(named) }
  }

  /** A backoff that stop() cuts short. */
  async #pause(step: string, ms: number): Promise<void> {
    this.#step = step
    await sleep(ms, undefined, { signal: this.#stopped.signal }).catch(() => {})
  }

  async #checkTable(): Promise<void> {
    const c = this.#config
    const result = await this.#withRetry(
      'postgres connect',
      async () =>
        (await this.#pg()).query<{ dims: number }>(
          `SELECT dims FROM ${c.names.versionsTable} WHERE topology = $1 AND version = $2`,
          [c.topology, c.version],
        ),
      isTransientPostgresError,
    ).catch((error: unknown) => {
      throw new RagstreamError(
        'RS_CONFIG_INVALID',
        `the sink cannot read ${c.names.versionsTable} at ${redactUrl(this.#postgresUrl)}: ${(error as Error).message}`,
        {
          context: { path: '/sink/schema' },
          hint: 'run `ragstream sink <topology> --migrate` as the owner role first, and connect the sink as the sink role',
          cause: error,
        },
      )
    })
    if (!result.rowCount) {
      throw new RagstreamError('RS_CONFIG_INVALID', `${c.topology}@${c.version} has no table yet`, {
        context: { path: '/sink/version' },
        hint: 'run `ragstream sink <topology> --migrate` as the owner role first',
      })
    }
    if (result.rows[0].dims !== c.dims) {
      throw new RagstreamError(
        'RS_CONFIG_INVALID',
        `${c.topology}@${c.version} has ${result.rows[0].dims} dimensions, the configuration says ${c.dims}`,
        { context: { path: '/sink/dims' } },
      )
    }
    // The sink must be subject to row-level security and must not own what it writes.
    const role = await this.#unlessStopped('postgres role check', async () =>
      (await this.#pg()).query<{ who: string; rolsuper: boolean; rolbypassrls: boolean; owns: boolean }>(
        `SELECT current_user AS who, r.rolsuper, r.rolbypassrls, pg_has_role(current_user, c.relowner, 'USAGE') AS owns
       FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = $1::regclass`,
        [c.names.chunkTable],
      ),
    )
    const { who, rolsuper, rolbypassrls, owns } = role.rows[0]
    if (rolsuper || rolbypassrls || owns) {
      throw new RagstreamError(
        'RS_CONFIG_INVALID',
        `the sink connected as ${JSON.stringify(who)}, which ${rolsuper ? 'is a superuser' : rolbypassrls ? 'has BYPASSRLS' : 'owns the table'}; connect as the sink role`,
        {
          context: { path: '/sink/sinkRole' },
          hint: 'see docs/sql.md for the owner/sink/analyst roles',
        },
      )
    }
  }

  /** A new generation: drop everything buffered, claim the assigned partitions, start from the stored offsets. */
  async #reassign(): Promise<void> {
    this.#assignmentChanged = false
    this.#partitions.clear()
    this.#groupOffsets.clear()
    this.#pendingClaims = []
    this.#batchStartedAt = null
    const topic = this.#config.topic
    const assigned = (this.#consumer.assignments ?? []).filter((a) => a.topic === topic).flatMap((a) => a.partitions)
    if (assigned.length === 0) {
      this.#log({ event: 'assigned', partitions: [], offsets: {} })
      return
    }
    const earliest = await this.#withRetry('kafka list offsets', () =>
      this.#consumer.listOffsets({ topics: [topic], timestamp: ListOffsetTimestamps.EARLIEST }),
    )
    await this.#claim(
      assigned.map((partition) => ({ partition, initial: earliest.get(topic)?.[partition] ?? 0n })),
      true,
    )
  }

  /**
   * Claims partitions with fresh owner tokens and starts reading them from their stored offsets.
   * Partitions locked by another session stay pending and are claimed again later by run().
   */
  async #claim(wanted: readonly { partition: number; initial: bigint }[], assignment = false): Promise<void> {
    const topic = this.#config.topic
    const claims = wanted.map((w) => ({ ...w, ownerToken: randomUUID() }))
    const stored = await this.#withRetry(
      'postgres claim',
      async () => claimPartitions(await this.#pg(), this.#config.names, topic, claims),
      isTransientPostgresError,
    )
    // The group moved on while we were claiming: claim again for the newer assignment.
    if (this.#assignmentChanged) return
    for (const claim of claims) {
      const offset = stored.get(claim.partition)
      if (offset === undefined) continue
      this.#partitions.set(claim.partition, {
        ownerToken: claim.ownerToken,
        committed: offset,
        position: offset,
        records: [],
      })
    }
    const pending = wanted.filter((w) => !stored.has(w.partition))
    const wasPending = this.#pendingClaims.length
    this.#pendingClaims = pending
    this.#pendingSince = Date.now()
    if (pending.length > 0 && (assignment || pending.length !== wasPending))
      this.#log({ event: 'claim-pending', partitions: pending.map((p) => p.partition) })
    if (assignment || stored.size > 0)
      this.#log({
        event: 'assigned',
        partitions: [...this.#partitions.keys()],
        offsets: Object.fromEntries([...this.#partitions].map(([p, st]) => [String(p), st.committed.toString()])),
      })
  }

  async #fetch(maxWaitMs: number): Promise<void> {
    const topic = this.#config.topic
    let metadata
    try {
      metadata = await this.#unlessStopped('kafka metadata', () => this.#consumer.metadata({ topics: [topic] }))
    } catch (error) {
      if (this.#stopping) return
      this.#log(this.#retryEvent('kafka metadata', 1, 500, error))
      await this.#pause('kafka metadata retry', 500)
      return
    }
    const topicMeta = metadata.topics.get(topic)
    if (!topicMeta) return
    const byNode = new Map<number, number[]>()
    for (const partition of this.#partitions.keys()) {
      const leader = topicMeta.partitions[partition]?.leader ?? -1
      byNode.set(leader, [...(byNode.get(leader) ?? []), partition])
    }
    await Promise.all(
      [...byNode].map(async ([node, partitions]) => {
        const requested = new Map(partitions.map((p) => [p, this.#partitions.get(p)!]))
        let response
        try {
          // Not Consumer.fetch: its read_committed filter drops committed transactions of a producer id
          // that aborted more than once (see src/runtime/read-committed.ts); committedRecords filters.
          response = await this.#unlessStopped('kafka fetch', () =>
            fetchUnfiltered(this.#consumer, {
              node,
              maxWaitMs,
              minBytes: 1,
              maxBytes: 16 * 1024 * 1024,
              topics: [
                {
                  topic,
                  topicId: topicMeta.id,
                  partitions: partitions.map((p) => ({
                    partition: p,
                    fetchOffset: requested.get(p)!.position,
                    maxBytes: 4 * 1024 * 1024,
                  })),
                },
              ],
            }),
          )
        } catch (error) {
          if (this.#stopping) return
          this.#log(this.#retryEvent('kafka fetch', 1, 500, error))
          await this.#unlessStopped('kafka metadata refresh', () =>
            this.#consumer.metadata({ topics: [topic], forceUpdate: true }),
          ).catch(() => {})
          await this.#pause('kafka fetch retry', 500)
          return
        }
        for (const fetched of response.partitions) {
          const state = requested.get(fetched.partition)
          // The assignment changed while fetching, or this state was replaced: ignore the data.
          if (!state || this.#partitions.get(fetched.partition) !== state || this.#assignmentChanged) continue
          const committed = committedRecords(
            topic,
            fetched.partition,
            state.position,
            fetched.batches,
            fetched.abortedTransactions,
          )
          for (const r of committed.records)
            state.records.push({ topic, partition: r.partition, offset: r.offset, key: r.key, value: r.value })
          state.position = committed.nextOffset
          state.stableOffset = fetched.lastStableOffset
          if (this.#batchStartedAt === null && state.position > state.committed) this.#batchStartedAt = Date.now()
        }
      }),
    )
  }

  async #flush(): Promise<void> {
    const topic = this.#config.topic
    const records: RawChunkRecord[] = []
    const progress: PartitionProgress[] = []
    // At most batchMaxRecords per transaction: a partition cut short stores the offset of its first
    // record left out, and the rest goes into the next batch.
    let budget = this.#batchCap()
    for (const [partition, state] of this.#partitions) {
      if (state.position <= state.committed) continue
      if (state.records.length > 0 && budget === 0) continue
      const take = state.records.length <= budget ? state.records : state.records.slice(0, budget)
      const next = take.length === state.records.length ? state.position : state.records[take.length].offset
      budget -= take.length
      records.push(...take)
      progress.push({ partition, expected: state.committed, next, ownerToken: state.ownerToken })
    }
    if (progress.length === 0) return
    await this.#withRetry('schema registry', () => this.#decoder.prepare(records))
    const events = records.map((r) => this.#decoder.decode(r))
    let batch = buildBatch(topic, progress, events)
    this.#log({ event: 'batch-begin', records: records.length, partitions: progress.map((p) => p.partition) })
    for (;;) {
      const began = performance.now()
      const outcome = await this.#withRetry(
        'postgres batch',
        async () => this.#writer.write(await this.#pg(), batch),
        isTransientPostgresError,
      )
      if (outcome.status === 'committed') {
        this.#timed(records.length, performance.now() - began)
        for (const p of batch.partitions) {
          const state = this.#partitions.get(p.partition)
          if (state?.ownerToken !== p.ownerToken) continue
          state.committed = p.next
          state.records =
            state.records.length > 0 && state.records[state.records.length - 1].offset >= p.next
              ? state.records.filter((r) => r.offset >= p.next)
              : []
        }
        if (!this.#hasProgress()) this.#batchStartedAt = null
        this.#log({
          event: 'batch-committed',
          upserted: outcome.upserted,
          deleted: outcome.deleted,
          audits: batch.audits.length,
          rejects: batch.rejects.length + (outcome.refused?.length ?? 0),
          alreadyCommitted: outcome.alreadyCommitted,
          offsets: Object.fromEntries(batch.partitions.map((p) => [String(p.partition), p.next.toString()])),
          ...(outcome.visibleAtMs === undefined
            ? {}
            : {
                visibleAtMs: outcome.visibleAtMs,
                [COMMITTED_FRESHNESS]: committedFreshness(batch, outcome.visibleAtMs, outcome.refused),
              }),
        })
        for (const p of batch.partitions) this.#groupOffsets.set(p.partition, p.next)
        this.#commitGroupOffsets()
        return
      }
      // RS_SINK_FENCED: another instance claimed these partitions. Stop their work and rejoin the
      // group; the assignment it hands out is claimed afresh. (The client deduplicates this with a
      // rejoin its heartbeat may have started already.)
      this.#log({ event: 'fenced', code: 'RS_SINK_FENCED', partitions: outcome.partitions })
      for (const partition of outcome.partitions) {
        this.#partitions.delete(partition)
        this.#groupOffsets.delete(partition)
      }
      this.#consumer.joinGroup({}).catch((error: unknown) => {
        this.#log(this.#retryEvent('kafka rejoin after fence', 1, 0, error))
      })
      const remaining = progress.filter((p) => this.#partitions.has(p.partition))
      if (remaining.length === 0) {
        if (!this.#hasProgress()) this.#batchStartedAt = null
        return
      }
      const keep = new Set(remaining.map((p) => p.partition))
      batch = buildBatch(
        topic,
        remaining,
        events.filter((_, i) => keep.has(records[i].partition)),
      )
    }
  }
}

/** The event fields naming the service an error says did not answer (none when it names none). */
function serviceFields(error: unknown): Partial<UnavailableService> & { code?: 'RS_SERVICE_UNAVAILABLE' } {
  const service = unavailableService(error)
  return service ? { code: 'RS_SERVICE_UNAVAILABLE', ...service } : {}
}

/**
 * Freshness of the rows a batch committed, grouped by topology version: `visibleAtMs` (the commit)
 * minus each row's `source_ts` (the time of the change that made this row version, at its source).
 * Rows PostgreSQL refused are left out: they never became visible.
 */
function committedFreshness(
  batch: SinkBatch,
  visibleAtMs: number,
  refused: readonly RejectRow[] | undefined,
): CommittedFreshness[] {
  const skip = new Set((refused ?? []).map((r) => `${r.partition}:${r.offset}`))
  const groups = new Map<string, { topology: string; version: string; lagsMs: number[]; appendLagsMs: number[] }>()
  for (const row of batch.upserts) {
    if (skip.size > 0 && skip.has(`${row.chunkPartition}:${row.chunkOffset}`)) continue
    const id = `${row.topology}\u0000${row.topologyVersion}`
    let group = groups.get(id)
    if (group === undefined) {
      group = { topology: row.topology, version: row.topologyVersion, lagsMs: [], appendLagsMs: [] }
      groups.set(id, group)
    }
    group.lagsMs.push(Math.max(0, visibleAtMs - row.sourceTimestampMs))
    const appendedAt = row.sourceAppendedAtMs
    if (appendedAt !== undefined && appendedAt !== null) group.appendLagsMs.push(Math.max(0, visibleAtMs - appendedAt))
  }
  return [...groups.values()]
}
