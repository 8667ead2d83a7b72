/**
 * Runs a deployment's processor (KafkaRuntime, Redis stores) and sink (PgvectorSink) in this process,
 * instrumented, so `demo` and `replay` can show progress and stop both cleanly: `stop()` lets the
 * processor commit or abort its open transaction and leave the group, and the sink finish or drop its
 * open Postgres transaction (uncommitted work is read again by the next owner). Nothing is left hanging.
 *
 * In production the same two parts run as `ragstream run` and `ragstream sink` processes.
 */
import { Admin } from '@platformatic/kafka'
import type pg from 'pg'
import { connectPostgres } from '../config/services.ts'
import type { Logger } from '../observability/logger.ts'
import { Metrics } from '../observability/metrics.ts'
import { KafkaRuntime, type RuntimeEvent } from '../runtime/kafka-runtime.ts'
import type { ProcessorTopology } from '../runtime/task.ts'
import { bootstrapDatabase, migrate } from '../sink/migrations.ts'
import type { SinkLogEvent } from '../sink/pgvector-sink.ts'
import { PgvectorSink } from '../sink/pgvector-sink.ts'
import { RedisStateBackend } from '../state/redis-store.ts'
import type { StateStore } from '../state/store.ts'
import { buildTopology, compileForBroker, deploymentServices, sourceTopics, type Deployment } from './deployment.ts'
import { consumerLag, type PartitionLag } from './consumer-lag.ts'
import { LagClock } from './lag-seconds.ts'
import {
  every,
  freshnessExporter,
  instrumentProcessor,
  instrumentSink,
  lagExporter,
  type ProcessorCounters,
  type SinkCounters,
} from './instrument.ts'

export { connectPostgres }

/**
 * Roles and schemas (once, as the administrator: skipped when they exist and the administrator may
 * not create them), then the deployment's tables as the owner. A new version is not activated while
 * another one serves.
 */
export async function prepareDatabase(d: Deployment): Promise<void> {
  const pgc = d.config.postgres
  const admin = await connectPostgres(pgc.adminUrl, 'ragstream-ops')
  try {
    await bootstrapDatabase(admin, d.sink.names).catch(async (error: unknown) => {
      const roles = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = ANY($1)', [
        [d.sink.names.ownerRole, d.sink.names.sinkRole],
      ])
      if (roles.rowCount !== 2) throw error
    })
  } finally {
    await admin.end().catch(() => {})
  }
  const owner = await connectPostgres(pgc.ownerUrl, 'ragstream-ops')
  try {
    await migrate(owner, d.sink)
  } finally {
    await owner.end().catch(() => {})
  }
}

/**
 * Creates the chunk topic (compacted: it is the chunk table's changelog) and the governance deletions
 * topic (compacted, non-null requests: see docs/governance.md) when missing, with the source topics'
 * partition count (the deletions topic is co-partitioned with them).
 */
export async function ensureChunkTopic(d: Deployment, sources: readonly string[]): Promise<void> {
  const admin = new Admin({
    clientId: `${d.applicationId}-ops`,
    bootstrapBrokers: [...d.config.endpoints.kafkaBrokers],
  })
  try {
    const existing = new Set(await admin.listTopics())
    const missing = [d.chunkTopic, ...(d.deletionsTopic === undefined ? [] : [d.deletionsTopic])].filter(
      (t) => !existing.has(t),
    )
    if (missing.length === 0) return
    const known = sources.filter((t) => existing.has(t))
    const metadata = known.length > 0 ? await admin.metadata({ topics: known }) : undefined
    const partitions = Math.max(1, ...known.map((t) => metadata?.topics.get(t)?.partitionsCount ?? 1))
    for (const topic of missing) {
      await admin
        .createTopics({
          topics: [topic],
          partitions,
          replicas: 1,
          configs: [{ name: 'cleanup.policy', value: 'compact' }],
        })
        .catch((error: unknown) => {
          if (
            !/already exists/i.test(
              String((error as Error).message) + JSON.stringify((error as { errors?: unknown }).errors ?? ''),
            )
          )
            throw error
        })
    }
  } finally {
    await admin.close().catch(() => {})
  }
}

export interface PipelineOptions {
  readonly deployment: Deployment
  /** Default: a fresh registry (serve it with `serveMetrics`). */
  readonly metrics?: Metrics
  readonly instanceId?: string
  readonly onRuntimeEvent?: (event: RuntimeEvent) => void
  readonly onSinkEvent?: (event: SinkLogEvent) => void
  /** Called when a poller fails (a service blip); progress keeps going. */
  readonly onPollError?: (error: unknown) => void
}

/** Runtime and sink events an operator must see (retries, aborts, fencing); routine ones stay quiet. */
const NOTABLE = new Set([
  'batch-aborted',
  'fenced',
  'group-error',
  'join-failed',
  'offset-out-of-range',
  'store-fenced',
  'flush-retry',
  'retry',
])

/** Pipeline callbacks that log notable events of processor and sink, and poller failures, at warn. */
export function pipelineLogging(log: Logger): Pick<PipelineOptions, 'onRuntimeEvent' | 'onSinkEvent' | 'onPollError'> {
  const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? String(x) : x)))
  return {
    onRuntimeEvent: (e) =>
      void (NOTABLE.has(e.event) && log.warn(json({ part: 'processor', ...e }) as object, e.event)),
    onSinkEvent: (e) => void (NOTABLE.has(e.event) && log.warn({ part: 'sink', ...e }, e.event)),
    onPollError: (error) => log.warn({ error: (error as Error).message }, 'progress reading failed'),
  }
}

export interface PipelineProgress {
  readonly processor: Readonly<ProcessorCounters>
  readonly sink: Readonly<SinkCounters>
  /** Provider calls (the one startup check of the provider included), texts sent, cache hits and misses, local CPU time. */
  readonly embedding: {
    readonly calls: number
    readonly items: number
    readonly cacheHits: number
    readonly cacheMisses: number
    readonly cpuMs: number
  }
  readonly processorLag: readonly PartitionLag[]
  readonly sinkLag: readonly PartitionLag[]
}

export class Pipeline {
  readonly deployment: Deployment
  readonly metrics: Metrics
  readonly #runtime: KafkaRuntime
  readonly #sink: PgvectorSink
  readonly #processor: ReturnType<typeof instrumentProcessor>
  readonly #sinkCounters: Readonly<SinkCounters>
  readonly #services: ReturnType<typeof deploymentServices>
  readonly #backend: RedisStateBackend
  readonly #admin: Admin
  readonly #lagClock: LagClock
  readonly #sources: readonly string[]
  readonly #repartitions: readonly string[]
  readonly #stopPollers: () => Promise<void>
  readonly #reader: pg.Client
  readonly done: Promise<void>
  #stopped: Promise<void> | undefined
  #failure: { readonly error: unknown } | undefined
  #lag: { processor: PartitionLag[]; sink: PartitionLag[] } = { processor: [], sink: [] }

  private constructor(init: {
    options: PipelineOptions
    topology: ProcessorTopology
    services: ReturnType<typeof deploymentServices>
    backend: RedisStateBackend
    reader: pg.Client
    sources: readonly string[]
  }) {
    const d = init.options.deployment
    this.deployment = d
    this.metrics = init.options.metrics ?? new Metrics()
    this.#services = init.services
    this.#backend = init.backend
    this.#reader = init.reader
    this.#sources = init.sources
    this.#repartitions = init.topology.topics.filter((t) => t.role === 'repartition').map((t) => t.name)
    this.#processor = instrumentProcessor(init.topology, this.metrics, { onEvent: init.options.onRuntimeEvent })
    const stores = new Map<string, StateStore>(init.topology.storeNames.map((name) => [name, init.backend.store(name)]))
    this.#runtime = new KafkaRuntime(this.#processor.topology, {
      brokers: d.config.endpoints.kafkaBrokers,
      stores,
      instanceId: init.options.instanceId ?? 'ops',
      sessionTimeoutMs: 6000,
      onEvent: this.#processor.onEvent,
      onBatchStage: this.#processor.onBatchStage,
    })
    const sink = instrumentSink(this.metrics, d.sink.names.chunkTableName, init.options.onSinkEvent)
    this.#sinkCounters = sink.counters
    this.#sink = new PgvectorSink({
      config: d.sink,
      postgresUrl: d.config.postgres.sinkUrl,
      kafkaBrokers: d.config.endpoints.kafkaBrokers,
      schemaRegistryUrl: d.config.endpoints.schemaRegistryUrl,
      log: sink.log,
    })
    this.#admin = new Admin({
      clientId: `${d.applicationId}-ops-lag`,
      bootstrapBrokers: [...d.config.endpoints.kafkaBrokers],
    })
    this.#lagClock = new LagClock(d.config.endpoints.kafkaBrokers, `${d.applicationId}-ops-lag-seconds`)
    const processorLag = lagExporter(
      this.#admin,
      this.metrics,
      'processor',
      d.applicationId,
      () => this.#sources,
      this.#lagClock,
    )
    const sinkLag = lagExporter(this.#admin, this.metrics, 'sink', d.sink.groupId, () => [d.chunkTopic], this.#lagClock)
    this.#stopPollers = every(
      1000,
      [
        freshnessExporter(this.#reader, d.sink.names.chunkTable, d.sink.names.chunkTableName, this.metrics),
        processorLag,
        sinkLag,
        async () => {
          const [processor, sinkPartitions] = await Promise.all([
            consumerLag(this.#admin, d.applicationId, this.#sources),
            consumerLag(this.#admin, d.sink.groupId, [d.chunkTopic]),
          ])
          this.#lag = { processor, sink: sinkPartitions }
        },
      ],
      init.options.onPollError,
    )
    // Either part failing stops the other: a half-running pipeline would only look healthy.
    const runs = [this.#runtime.run(), this.#sink.run()].map((p) =>
      p.catch((error: unknown) => {
        this.#failure ??= { error }
        void this.stop()
        throw error
      }),
    )
    this.done = Promise.all(runs).then(() => undefined)
    this.done.catch(() => {})
  }

  /** Prepares Postgres and the chunk topic, then starts processor and sink. Source topics must exist. */
  static async start(options: PipelineOptions): Promise<Pipeline> {
    const d = options.deployment
    await prepareDatabase(d)
    const sources = sourceTopics(d)
    await ensureChunkTopic(d, sources)
    const services = deploymentServices(d)
    let backend: RedisStateBackend | undefined
    try {
      const topology = await compileForBroker(buildTopology(d, services), d.config.endpoints)
      backend = RedisStateBackend.fromEndpoints(d.applicationId, d.config.endpoints)
      const reader = await connectPostgres(d.config.postgres.sinkUrl, 'ragstream-ops-freshness')
      return new Pipeline({ options, topology, services, backend, reader, sources })
    } catch (error) {
      await Promise.allSettled([services.close(), backend?.close()])
      throw error
    }
  }

  /** The model id the rows record (`Embedder.model`, e.g. `local:all-minilm-l6-v2-int8@384`). */
  get embeddingModel(): string {
    return this.#services.embedder.model
  }

  /** What happened so far: committed records, sink rows, embedding calls and cache hits, last lag reading. */
  progress(): PipelineProgress {
    const e = this.#services.embedder.metrics()
    return {
      processor: { ...this.#processor.counters },
      sink: { ...this.#sinkCounters },
      embedding: { calls: e.calls, items: e.items, cacheHits: e.cacheHits, cacheMisses: e.cacheMisses, cpuMs: e.cpuMs },
      processorLag: this.#lag.processor,
      sinkLag: this.#lag.sink,
    }
  }

  /**
   * Per-partition lag of the processor on its sources and internal repartition topics, and of the sink
   * on the chunk topic. Repartition and chunk topics are transactional: their last offset may be a
   * commit marker no consumer passes, so a lag of 1 there can mean "caught up".
   */
  async detailedLag(): Promise<{ sources: PartitionLag[]; repartitions: PartitionLag[]; sink: PartitionLag[] }> {
    this.throwIfFailed()
    const d = this.deployment
    try {
      const [sources, repartitions, sink] = await Promise.all([
        consumerLag(this.#admin, d.applicationId, this.#sources),
        consumerLag(this.#admin, d.applicationId, this.#repartitions),
        consumerLag(this.#admin, d.sink.groupId, [d.chunkTopic]),
      ])
      return { sources, repartitions, sink }
    } catch (error) {
      // A part failed while this call was in flight and its stop closed the admin client: say why.
      this.throwIfFailed()
      throw error
    }
  }

  /**
   * Throws the error that stopped the processor or the sink, if one did. A caller polling the pipeline
   * must see that cause, not what its next call on the closed clients says ("Client is closed.").
   */
  throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error
  }

  /** Graceful stop of both parts; resolves when both have stopped and every connection is closed. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#runtime.stop()
      this.#sink.stop()
      await Promise.allSettled([this.done])
      await this.#stopPollers()
      await Promise.allSettled([
        this.#admin.close(),
        this.#lagClock.close(),
        this.#services.close(),
        this.#backend.close(),
        this.#reader.end(),
      ])
    })()
    return this.#stopped
  }
}
