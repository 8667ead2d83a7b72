import { eventWriter } from '../../observability/event-log.ts'
import { hostname } from 'node:os'
import { isApp } from '../../app/app.ts'
import { importTopologyFile, resolveAppRef } from '../../app/load.ts'
import { loadConfig, type RagstreamConfig } from '../../config/file.ts'
import { checkKafka, checkRedis } from '../../config/services.ts'
import { buildTopology, deployment, deploymentServices, type Deployment } from '../../ops/deployment.ts'
import { ensureWrittenTopics, type WrittenTopic } from '../../ops/output-topics.ts'
import { ago, startProgress } from '../../ops/progress.ts'
import { consumerLag, totalLag } from '../../ops/consumer-lag.ts'
import { Admin } from '@platformatic/kafka'
import { ConfigError, type Problem } from '../../errors.ts'
import { Metrics, serveMetrics } from '../../observability/metrics.ts'
import { exportProcessorLag, instrumentProcessor } from '../../ops/instrument.ts'
import { compileForBroker } from '../../runtime/compile-for-broker.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../runtime/kafka-runtime.ts'
import type { ProcessorTopology } from '../../runtime/task.ts'
import { MemoryStateStore } from '../../state/memory-store.ts'
import type { StateStore } from '../../state/store.ts'
import { EXIT, type CommandSpec } from '../command.ts'
import { exitUnlessStoppedWithin, exitWhenStopped } from '../shutdown.ts'

interface Compilable {
  compile(options: { partitions: number; sinkPartitions?: Record<string, number> }): ProcessorTopology
}

function isProcessorTopology(value: unknown): value is ProcessorTopology {
  const v = value as Partial<ProcessorTopology> | undefined
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.process === 'function' &&
    typeof v.prefetchKeys === 'function' &&
    Array.isArray(v.sourceTopics)
  )
}

function isCompilable(value: unknown): value is Compilable {
  return typeof value === 'object' && value !== null && typeof (value as Partial<Compilable>).compile === 'function'
}

/**
 * Loads what a command names as the runtime's ProcessorTopology: an app (one version of it, its
 * services from the configuration), a DSL topology, or an already compiled ProcessorTopology,
 * compiled with the partition counts the broker reports (source topics must exist).
 */
export async function loadProcessorTopology(
  ref: string,
  config: RagstreamConfig,
  options: { version?: string; prefix?: string; name?: string; onTopics?: (topics: WrittenTopic[]) => void } = {},
): Promise<{ topology: ProcessorTopology; deployment?: Deployment; close(): Promise<void> }> {
  const brokers = config.endpoints.kafkaBrokers
  const { file } = resolveAppRef(ref, config.apps)
  const exported = await importTopologyFile(file)
  if (isProcessorTopology(exported)) return { topology: exported, close: async () => {} }
  if (isApp(exported)) {
    const d = deployment({
      app: exported,
      version: options.version ?? 'v1',
      prefix: options.prefix,
      name: options.name,
      config,
    })
    const services = deploymentServices(d)
    try {
      const built = buildTopology(d, services)
      const deletions = d.deletionsTopic === undefined ? [] : [d.deletionsTopic]
      options.onTopics?.(
        await ensureWrittenTopics(built, brokers, { compact: [d.chunkTopic, ...deletions], extra: deletions }),
      )
      const topology = await compileForBroker(built, brokers, 'run-admin')
      return { topology, deployment: d, close: () => services.close() }
    } catch (error) {
      await services.close().catch(() => {})
      throw error
    }
  }
  if (!isCompilable(exported)) {
    throw new ConfigError(
      [
        {
          path: file,
          message:
            'must default-export an app (defineApp), a topology built with TopologyBuilder#build() or a compiled ProcessorTopology',
        },
      ],
      'topology file',
    )
  }
  const appOnly = (['version', 'prefix', 'name'] as const).find((o) => options[o] !== undefined)
  if (appOnly !== undefined)
    throw new ConfigError(
      [
        {
          path: `--${appOnly}`,
          message: `${file} exports a bare topology, not an app: it has no versions, prefix or name`,
        },
      ],
      'arguments',
      'RS_CONFIG_INVALID',
      'wrap it in defineApp (docs/your-own-topology.md)',
    )
  options.onTopics?.(await ensureWrittenTopics(exported, brokers))
  return { topology: await compileForBroker(exported, brokers, 'run-admin'), close: async () => {} }
}

function positiveInt(
  values: Record<string, unknown>,
  name: string,
  problems: Problem[],
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const raw = values[name]
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push({
      path: `--${name}`,
      message: min === 0 ? `must be an integer from 0 to ${max}` : 'must be a positive integer',
    })
    return undefined
  }
  return n
}

/**
 * `ragstream run <topology-file>` — runs a topology as one member of its consumer group, exactly once.
 *
 * @example
 * ```sh
 * ragstream run support-copilot --instance-id "$HOSTNAME"
 * ragstream run src/reviews.ts --version v2 --store memory --batch-max-records 5000
 * ```
 */
export const runCommand: CommandSpec = {
  name: 'run',
  summary: 'Run a topology: one consumer-group member, one task per input partition, exactly-once batches.',
  args: '<app>',
  options: {
    version: {
      type: 'string',
      value: '<v>',
      description: 'the version of the app to run (default v1); its names follow docs/operations.md',
    },
    prefix: {
      type: 'string',
      value: '<prefix>',
      description: "the app's source topic prefix (default its variable, else its default)",
    },
    name: {
      type: 'string',
      value: '<base>',
      description:
        "base of the Kafka names instead of the app's: application id <base>[-<version>], chunk topic rag.chunks.<base>[.<version>] (a second copy of an app side by side)",
    },
    'instance-id': {
      type: 'string',
      value: '<id>',
      description:
        'stable id of this instance (transactional id <applicationId>-<id>); reuse it on restart, never run two at once. Default: RAGSTREAM_INSTANCE_ID, else a random id',
    },
    'leave-group': {
      type: 'boolean',
      description:
        'on SIGTERM/SIGINT leave the consumer group, so the tasks move at once (a planned scale-in). Without it, an instance with --instance-id keeps its tasks until its session times out, so a restart moves nothing',
    },
    store: {
      type: 'string',
      default: 'redis',
      value: '<redis|memory>',
      description:
        'state stores: Redis (RAGSTREAM_REDIS_URL) or in-process memory (restored from changelogs on every start)',
    },
    'redis-cluster': { type: 'boolean', description: 'use the Redis Cluster nodes of RAGSTREAM_REDIS_CLUSTER_NODES' },
    'batch-max-records': {
      type: 'string',
      value: '<n>',
      default: '1000',
      description:
        'a batch closes at this many records, and a transaction takes no further chained rounds or batches once it holds this many',
    },
    'batch-max-bytes': {
      type: 'string',
      value: '<n>',
      default: String(4 * 1024 * 1024),
      description: '… or at this many key+value bytes',
    },
    'max-chained-rounds': {
      type: 'string',
      value: '<n>',
      default: '8',
      description:
        'hop chaining: records a batch writes to internal topics (repartition, FK subscription and response) that this instance reads are processed in the same transaction, up to this many rounds, so a change crosses its hops in one transaction; 0 = a transaction per hop',
    },
    'commit-interval-ms': {
      type: 'string',
      value: '<ms>',
      default: '100',
      description:
        'commit cadence, adaptive: a transaction also takes the batches already there (no waiting) until it has been open this long; with nothing more there it commits at once. 0 = a transaction per fetched batch',
    },
    'batch-linger-ms': {
      type: 'string',
      value: '<ms>',
      default: '50',
      description:
        'adaptive batch linger: while records keep arriving closer together than this (the time since the previous batch over its records), a batch waits up to this long for more, so a trickle is processed several changes per transaction; after a pause no wait. 0 = never wait',
    },
    'session-timeout-ms': {
      type: 'string',
      value: '<ms>',
      default: '10000',
      description: 'consumer group session timeout',
    },
    'transaction-timeout-ms': {
      type: 'string',
      value: '<ms>',
      default: '30000',
      description:
        "the broker aborts (and fences) a transaction open longer than this; a killed instance's tasks wait for it (after the session timeout), so keep it near the session timeout for fast failover",
    },
    'auto-offset-reset': {
      type: 'string',
      value: '<earliest|latest>',
      default: 'earliest',
      description: 'where partitions without committed offsets start',
    },
    'metrics-port': {
      type: 'string',
      value: '<port>',
      description:
        'serve Prometheus metrics (GET /metrics, /healthz) on 127.0.0.1:<port>: records, transactions, restore, lag, governance (redactions per detector, decisions) and embedding (docs/metrics.md)',
    },
    'shutdown-timeout-ms': {
      type: 'string',
      value: '<ms>',
      default: '30000',
      description: 'after SIGTERM/SIGINT, exit 1 if the graceful stop has not finished by then',
    },
  },
  details: [
    'Brokers come from RAGSTREAM_KAFKA_BROKERS. Runtime events are printed to stderr as JSON lines.',
    'SIGTERM/SIGINT stop gracefully: the open batch commits (or aborts). An instance with --instance-id stays in the',
    'group (static membership: a restart within the session timeout takes its tasks back, nothing moves) unless',
    '--leave-group is given (scale-in: its tasks move at once); one without an id leaves the group.',
    'If that has not finished within --shutdown-timeout-ms (e.g. a state store or the broker does not answer),',
    'it logs the last runtime event and what is still open (event shutdown-timeout) and exits 1; a second',
    'signal exits 1 at once. Once stopped, it exits; if a client library still holds the process 2 s later, it',
    'logs what is open (event exit-forced) and exits. Exiting without a commit is safe: the open Kafka transaction never commits (the',
    'next instance with the same --instance-id aborts it at once, otherwise the transaction timeout does), so',
    'its outputs, changelog records and offsets are never visible, and the batch is processed again.',
    'Exit codes: 0 stopped, 1 failure (RS_PRODUCER_FENCED: another instance took over) or shutdown deadline passed, 2 usage, 69 a service is unavailable, 78 invalid topology or options.',
  ].join('\n'),
  async run({ positionals, values, stderr, env, config: given }) {
    const file = positionals[0]
    if (file === undefined || positionals.length > 1) {
      stderr.write(
        'usage: ragstream run <app> [options]   (<app>: a topology file or a name from /apps of the config)\n',
      )
      return EXIT.usage
    }
    const problems: Problem[] = []
    const store = values.store as string
    if (store !== 'redis' && store !== 'memory') problems.push({ path: '--store', message: 'must be redis or memory' })
    const reset = values['auto-offset-reset'] as string
    if (reset !== 'earliest' && reset !== 'latest')
      problems.push({ path: '--auto-offset-reset', message: 'must be earliest or latest' })
    const batchMaxRecords = positiveInt(values, 'batch-max-records', problems)
    const batchMaxBytes = positiveInt(values, 'batch-max-bytes', problems)
    const maxChainedRounds = positiveInt(values, 'max-chained-rounds', problems, 0, 1000)
    const commitIntervalMs = positiveInt(values, 'commit-interval-ms', problems, 0, 60_000)
    const batchLingerMs = positiveInt(values, 'batch-linger-ms', problems, 0, 60_000)
    const sessionTimeoutMs = positiveInt(values, 'session-timeout-ms', problems)
    const transactionTimeoutMs = positiveInt(values, 'transaction-timeout-ms', problems)
    const metricsPort = positiveInt(values, 'metrics-port', problems, 0, 65535)
    const shutdownTimeoutMs = positiveInt(values, 'shutdown-timeout-ms', problems) ?? 30_000
    if (problems.length > 0) throw new ConfigError(problems, 'arguments')

    const config = given ?? loadConfig({ env })
    const endpoints = config.endpoints
    await checkKafka(endpoints)
    const write = eventWriter(stderr, env)
    const loaded = await loadProcessorTopology(file, config, {
      version: values.version as string | undefined,
      prefix: values.prefix as string | undefined,
      name: values.name as string | undefined,
      onTopics: (topics) => {
        for (const t of topics)
          write({
            time: new Date().toISOString(),
            event: t.created ? 'topic-created' : 'topic-verified',
            topic: t.name,
          })
      },
    })
    const topology = loaded.topology

    const stores = new Map<string, StateStore>()
    let closeBackend = async (): Promise<void> => {}
    if (store === 'redis') {
      if (!values['redis-cluster']) await checkRedis(endpoints.redisUrl)
      const { RedisStateBackend } = await import('../../state/redis-store.ts')
      const backend = RedisStateBackend.fromEndpoints(topology.applicationId, endpoints, {
        cluster: Boolean(values['redis-cluster']),
      })
      for (const name of topology.storeNames) stores.set(name, backend.store(name))
      closeBackend = () => backend.close()
    } else {
      for (const name of topology.storeNames) stores.set(name, new MemoryStateStore(name))
    }

    const instanceId = (values['instance-id'] as string | undefined) ?? env.RAGSTREAM_INSTANCE_ID?.trim() ?? undefined
    let last: { event: string; at: number } = { event: 'none', at: Date.now() }
    /** The runtime's events and the command's own (starting, signal, metrics, shutdown-timeout, exit-forced). */
    const log = (event: RuntimeEvent | { readonly event: string; readonly [field: string]: unknown }): void => {
      last = { event: event.event, at: Date.now() }
      write({ time: new Date().toISOString(), host: hostname(), ...event })
    }
    const metrics = new Metrics({ defaultMetrics: metricsPort !== undefined })
    // The topology file built its own embedder and decoders: their counts reach the metrics through
    // the telemetry scope instrumentProcessor opens around each batch (embedding included). The
    // counters feed the progress line too.
    let lastCommit: number | undefined
    const instrumented = instrumentProcessor(topology, metrics, {
      onEvent: log,
      onBatchStage: (stage) => void (stage === 'committed' && (lastCommit = Date.now())),
    })
    const stopLag =
      metricsPort !== undefined ? exportProcessorLag(metrics, endpoints.kafkaBrokers, topology) : undefined
    const internalTopics = new Set(topology.topics.filter((t) => t.role !== 'source').map((t) => t.name))
    const externalSources = topology.sourceTopics.filter((t) => !internalTopics.has(t))
    let progressAdmin: Admin | undefined
    const stopProgress = startProgress({
      out: stderr,
      env,
      line: async () => {
        progressAdmin ??= new Admin({
          clientId: `${topology.applicationId}-progress`,
          bootstrapBrokers: [...endpoints.kafkaBrokers],
        })
        const lag = totalLag(await consumerLag(progressAdmin, topology.applicationId, externalSources))
        const c = instrumented.counters
        return `records in ${c.recordsIn} out ${c.recordsOut}  lag ${lag}  dead letters ${c.deadLetters}  batches ${c.batches} (aborted ${c.aborts})  last commit ${ago(lastCommit)}`
      },
    })
    const runtime = new KafkaRuntime(instrumented.topology, {
      brokers: endpoints.kafkaBrokers,
      stores,
      instanceId: instanceId || undefined,
      batchMaxRecords,
      batchMaxBytes,
      maxChainedRounds,
      commitIntervalMs,
      batchLingerMs,
      sessionTimeoutMs,
      transactionTimeoutMs,
      ...(values['leave-group'] ? { leaveGroupOnStop: true } : {}),
      autoOffsetReset: reset as 'earliest' | 'latest',
      onEvent: instrumented.onEvent,
      onBatchStage: instrumented.onBatchStage,
    })
    log({
      event: 'starting',
      applicationId: topology.applicationId,
      transactionalId: runtime.transactionalId,
      sources: topology.sourceTopics,
      store,
    })
    let server: Awaited<ReturnType<typeof serveMetrics>> | undefined

    let signals = 0
    const deadline = exitUnlessStoppedWithin(
      shutdownTimeoutMs,
      () => runtime.stop(),
      () => `the graceful stop; last runtime event: ${last.event}, ${Date.now() - last.at} ms ago`,
      (event) => log({ event: String(event.event), ...event }),
    )
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++
      log({ event: 'signal', signal, action: signals === 1 ? 'graceful stop' : 'exit now' })
      deadline(signal)
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
    try {
      if (metricsPort !== undefined) {
        server = await serveMetrics(metrics, { port: metricsPort, path: '--metrics-port' })
        const bound = (server.address() as { port: number } | null)?.port ?? metricsPort
        log({ event: 'metrics', url: `http://127.0.0.1:${bound}/metrics` })
      }
      await runtime.run()
      return EXIT.ok
    } finally {
      // The signal handlers stay: a signal during the last steps of the exit still ends the process.
      stopProgress()
      await progressAdmin?.close().catch(() => {})
      await stopLag?.()
      await closeBackend().catch(() => {})
      await loaded.close().catch(() => {})
      const open = server
      if (open) await new Promise<void>((resolve) => open.close(() => resolve()))
      exitWhenStopped((event) => log({ event: String(event.event), ...event }))
    }
  },
}
