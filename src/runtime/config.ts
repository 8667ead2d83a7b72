/**
 * The Kafka runtime's options, validated once into a config with one default per option (as
 * `sink/config.ts` does for the sink). Every problem is listed with its path (`/runtime/<option>`)
 * in one RS_CONFIG_INVALID; the runtime reads only the resolved config, never the raw options.
 */
import { randomUUID } from 'node:crypto'
import { ConfigError, type Problem } from '../errors.ts'
import type { StateStore } from '../state/store.ts'
import type { RuntimeEvent } from './events.ts'
import type { ProcessorTopology } from './task.ts'

/** Points inside a batch's transaction, reported to `onBatchStage` (instrumentation and fault-injection tests). */
export type BatchStage = 'produced' | 'offsets-sent' | 'committed'

export interface KafkaRuntimeOptions {
  readonly brokers: readonly string[]
  /** One store per name in `topology.storeNames`. The runtime closes them when it stops. */
  readonly stores: ReadonlyMap<string, StateStore>
  /**
   * Stable identity of this instance: the transactional id is `<applicationId>-<instanceId>`, and the
   * consumer joins the group as a static member with this `group.instance.id`, so a restart within
   * the session timeout takes its partitions back without a rebalance. Give a restarted instance its
   * previous id (e.g. the pod name); two live instances must never share one. Default: a random id
   * (then the member is dynamic: a stopped instance leaves the group at once).
   */
  readonly instanceId?: string
  /**
   * Whether a graceful stop sends LeaveGroup, so the partitions move at once. Default: true for a
   * dynamic member, false for a static one (its restart within the session timeout then moves
   * nothing; for a permanent scale-in set it to true, or let the session time out).
   */
  readonly leaveGroupOnStop?: boolean
  /** Batch bounds: a batch closes at this many records or bytes, whichever comes first. */
  readonly batchMaxRecords?: number
  readonly batchMaxBytes?: number
  readonly fetchMaxWaitMs?: number
  /**
   * Hop chaining: records the topology writes to an internal (repartition, FK subscription/response)
   * topic partition this instance reads are processed inside the same transaction, as the next round,
   * when nothing precedes them in that partition; so one change crosses its internal hops in one
   * transaction instead of one per hop (exactly once as before: the round's input offsets commit with
   * its outputs). At most this many chained rounds per transaction (and `batchMaxRecords` records);
   * 0 = one transaction per hop. Default 8.
   */
  readonly maxChainedRounds?: number
  /**
   * Commit cadence, adaptive: after a batch (and its chained rounds), the open transaction takes the
   * next batch too if it is already there (buffered, or returned by a fetch that does not wait), until
   * the transaction has been open this long or holds `batchMaxRecords` records; when nothing more is
   * there it commits at once, so a lone change is not delayed, and under load several batches share
   * one commit. 0 = one transaction per fetched batch. Default 100.
   */
  readonly commitIntervalMs?: number
  /**
   * Adaptive batch linger: while records keep arriving closer together than this (the time since
   * the previous batch over its records), a batch waits up to this long for more before it is processed (one fetch the
   * broker holds), so a steady trickle is processed several changes per round and transaction instead
   * of one each; a change after a pause is processed at once. 0 = never wait. Default 50.
   */
  readonly batchLingerMs?: number
  readonly sessionTimeoutMs?: number
  readonly heartbeatIntervalMs?: number
  readonly rebalanceTimeoutMs?: number
  /** Transaction timeout: the coordinator aborts a transaction open longer than this (and fences its producer). */
  readonly transactionTimeoutMs?: number
  /** Where a partition with no committed offset starts. */
  readonly autoOffsetReset?: 'earliest' | 'latest'
  /** Replication factor of the internal topics it creates; default -1 = the broker's default.replication.factor. */
  readonly replicationFactor?: number
  /**
   * Largest record (key + value + headers) the runtime produces, checked before producing. An output
   * record above it dead-letters its source record (RS_RECORD_TOO_LARGE); so does a state-store value
   * above it, found by re-reading the batch one record at a time. A topic whose `max.message.bytes`
   * (read from the broker at start) is lower bounds its own records by that instead.
   */
  readonly maxRecordBytes?: number
  /** Bytes of the failed output kept in a dead letter's excerpt header (never the whole value). */
  readonly deadLetterExcerptBytes?: number
  /** Purge repartition topics up to the committed offsets after commits (DeleteRecords). Default true. */
  readonly purgeRepartitionTopics?: boolean
  /** At most one purge per this interval (Kafka Streams' repartition.purge.interval.ms); 0 = after every commit. */
  readonly repartitionPurgeIntervalMs?: number
  readonly onEvent?: (event: RuntimeEvent) => void
  readonly onBatchStage?: (stage: BatchStage) => void | Promise<void>
}

export interface RuntimeConfig {
  readonly brokers: readonly string[]
  readonly stores: ReadonlyMap<string, StateStore>
  readonly instanceId: string
  /** Whether the member joins with `group.instance.id = instanceId` (only when the id was given). */
  readonly staticMember: boolean
  readonly leaveGroupOnStop: boolean
  readonly transactionalId: string
  readonly batchMaxRecords: number
  readonly batchMaxBytes: number
  readonly fetchMaxWaitMs: number
  readonly maxChainedRounds: number
  readonly commitIntervalMs: number
  readonly batchLingerMs: number
  readonly sessionTimeoutMs: number
  readonly heartbeatIntervalMs: number
  readonly rebalanceTimeoutMs: number
  readonly transactionTimeoutMs: number
  readonly autoOffsetReset: 'earliest' | 'latest'
  readonly replicationFactor: number
  readonly maxRecordBytes: number
  readonly deadLetterExcerptBytes: number
  readonly purgeRepartitionTopics: boolean
  readonly repartitionPurgeIntervalMs: number
  readonly onEvent: (event: RuntimeEvent) => void
  readonly onBatchStage: ((stage: BatchStage) => void | Promise<void>) | undefined
}

function intIn(
  problems: Problem[],
  option: string,
  value: unknown,
  min: number,
  max: number,
  fallback: number,
): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.push({
      path: `/runtime/${option}`,
      message: `must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`,
    })
    return fallback
  }
  return value
}

const noEvents = (): void => {}

/** Validates `options` against the topology; throws one RS_CONFIG_INVALID listing every problem. */
export function resolveRuntimeConfig(topology: ProcessorTopology, options: KafkaRuntimeOptions): RuntimeConfig {
  const problems: Problem[] = []
  const o = options as Partial<KafkaRuntimeOptions>
  if (!Array.isArray(o.brokers) || o.brokers.length === 0)
    problems.push({ path: '/runtime/brokers', message: 'required: at least one host:port' })
  else
    o.brokers.forEach((b, i) => {
      if (typeof b !== 'string' || !/^\S+:\d+$/.test(b))
        problems.push({ path: `/runtime/brokers/${i}`, message: `must be host:port (got ${JSON.stringify(b)})` })
    })
  if (!(o.stores instanceof Map)) problems.push({ path: '/runtime/stores', message: 'required: a Map of state stores' })
  else
    for (const name of topology.storeNames)
      if (!o.stores.has(name))
        problems.push({ path: `/runtime/stores/${name}`, message: 'no state store given for this topology store' })
  const given = o.instanceId
  if (given !== undefined && (typeof given !== 'string' || !/^[A-Za-z0-9._-]{1,200}$/.test(given)))
    problems.push({
      path: '/runtime/instanceId',
      message: `must be 1-200 characters of letters, digits, '.', '_' or '-' (got ${JSON.stringify(given)})`,
    })
  const batchMaxRecords = intIn(problems, 'batchMaxRecords', o.batchMaxRecords, 1, 1_000_000, 1_000)
  const batchMaxBytes = intIn(problems, 'batchMaxBytes', o.batchMaxBytes, 1024, 1024 ** 3, 4 * 1024 * 1024)
  const fetchMaxWaitMs = intIn(problems, 'fetchMaxWaitMs', o.fetchMaxWaitMs, 0, 60_000, 500)
  const maxChainedRounds = intIn(problems, 'maxChainedRounds', o.maxChainedRounds, 0, 1_000, 8)
  const commitIntervalMs = intIn(problems, 'commitIntervalMs', o.commitIntervalMs, 0, 60_000, 100)
  const batchLingerMs = intIn(problems, 'batchLingerMs', o.batchLingerMs, 0, 60_000, 50)
  const sessionTimeoutMs = intIn(problems, 'sessionTimeoutMs', o.sessionTimeoutMs, 1_000, 3_600_000, 10_000)
  const heartbeatIntervalMs = intIn(
    problems,
    'heartbeatIntervalMs',
    o.heartbeatIntervalMs,
    50,
    3_600_000,
    // A member learns of a rebalance only at its next heartbeat, and a leaver's tasks stay idle
    // until every member has: a tenth of the session keeps that part of a scale-in short.
    Math.max(100, Math.floor(sessionTimeoutMs / 10)),
  )
  if (heartbeatIntervalMs >= sessionTimeoutMs)
    problems.push({ path: '/runtime/heartbeatIntervalMs', message: 'must be shorter than sessionTimeoutMs' })
  const rebalanceTimeoutMs = intIn(
    problems,
    'rebalanceTimeoutMs',
    o.rebalanceTimeoutMs,
    1_000,
    3_600_000,
    Math.max(sessionTimeoutMs, 10_000),
  )
  const transactionTimeoutMs = intIn(problems, 'transactionTimeoutMs', o.transactionTimeoutMs, 1_000, 900_000, 30_000)
  if (commitIntervalMs >= transactionTimeoutMs)
    problems.push({
      path: '/runtime/commitIntervalMs',
      message: `must be shorter than transactionTimeoutMs (${transactionTimeoutMs})`,
    })
  const autoOffsetReset = o.autoOffsetReset ?? 'earliest'
  if (autoOffsetReset !== 'earliest' && autoOffsetReset !== 'latest')
    problems.push({ path: '/runtime/autoOffsetReset', message: "must be 'earliest' or 'latest'" })
  const replicationFactor = intIn(problems, 'replicationFactor', o.replicationFactor, -1, 32, -1)
  if (replicationFactor === 0)
    problems.push({ path: '/runtime/replicationFactor', message: 'must be -1 or at least 1' })
  const maxRecordBytes = intIn(problems, 'maxRecordBytes', o.maxRecordBytes, 1024, 1024 ** 3, 1_000_000)
  const deadLetterExcerptBytes = intIn(problems, 'deadLetterExcerptBytes', o.deadLetterExcerptBytes, 0, 4096, 256)
  const purgeRepartitionTopics = o.purgeRepartitionTopics ?? true
  if (typeof purgeRepartitionTopics !== 'boolean')
    problems.push({ path: '/runtime/purgeRepartitionTopics', message: 'must be a boolean' })
  const repartitionPurgeIntervalMs = intIn(
    problems,
    'repartitionPurgeIntervalMs',
    o.repartitionPurgeIntervalMs,
    0,
    3_600_000,
    30_000,
  )
  if (o.leaveGroupOnStop !== undefined && typeof o.leaveGroupOnStop !== 'boolean')
    problems.push({ path: '/runtime/leaveGroupOnStop', message: 'must be a boolean' })
  for (const fn of ['onEvent', 'onBatchStage'] as const)
    if (o[fn] !== undefined && typeof o[fn] !== 'function')
      problems.push({ path: `/runtime/${fn}`, message: 'must be a function' })
  if (problems.length > 0) throw new ConfigError(problems, 'runtime options')

  const instanceId = given ?? randomUUID()
  return {
    brokers: [...o.brokers!],
    stores: o.stores!,
    instanceId,
    staticMember: given !== undefined,
    leaveGroupOnStop: o.leaveGroupOnStop ?? given === undefined,
    transactionalId: `${topology.applicationId}-${instanceId}`,
    batchMaxRecords,
    batchMaxBytes,
    fetchMaxWaitMs,
    maxChainedRounds,
    commitIntervalMs,
    batchLingerMs,
    sessionTimeoutMs,
    heartbeatIntervalMs,
    rebalanceTimeoutMs,
    transactionTimeoutMs,
    autoOffsetReset,
    replicationFactor,
    maxRecordBytes,
    deadLetterExcerptBytes,
    purgeRepartitionTopics,
    repartitionPurgeIntervalMs,
    onEvent: o.onEvent ?? noEvents,
    onBatchStage: o.onBatchStage,
  }
}
