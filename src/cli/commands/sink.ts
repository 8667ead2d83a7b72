import { eventWriter } from '../../observability/event-log.ts'
import type pg from 'pg'
import { connectPostgres } from '../../config/services.ts'
import { EXIT, type CommandInput, type CommandSpec } from '../command.ts'
import { endpointsFromEnv, redactUrl } from '../../config/endpoints.ts'
import { ConfigError, RagstreamError } from '../../errors.ts'
import {
  resolveSinkConfig,
  type BatchWait,
  type Distance,
  type SinkConfig,
  type VectorIndex,
  type VectorStorage,
} from '../../sink/config.ts'
import { loadConfig, type RagstreamConfig } from '../../config/file.ts'
import type { Deployment } from '../../ops/deployment.ts'
import { ago, startProgress } from '../../ops/progress.ts'
import { exitUnlessStoppedWithin, exitWhenStopped } from '../shutdown.ts'
import { DEPLOYMENT_OPTIONS } from './status.ts'

function intOption(values: CommandInput['values'], name: string): number | undefined {
  const raw = values[name]
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (!Number.isInteger(n))
    throw new ConfigError(
      [{ path: `--${name}`, message: `must be an integer (got ${JSON.stringify(raw)})` }],
      'arguments',
    )
  return n
}

function str(values: CommandInput['values'], name: string): string | undefined {
  const v = values[name]
  return typeof v === 'string' ? v : undefined
}

/** The sink section of a topology, from options (until the topology loader carries it). */
export function sinkConfigFromOptions(topology: string | undefined, values: CommandInput['values']): SinkConfig {
  if (!topology) throw new ConfigError([{ path: '<topology>', message: 'required' }], 'arguments')
  const dims = intOption(values, 'dims')
  return resolveSinkConfig({
    topology,
    version: str(values, 'topology-version'),
    topic: str(values, 'topic'),
    dims: dims as number,
    distance: str(values, 'distance') as Distance | undefined,
    hnsw: { m: intOption(values, 'hnsw-m'), efConstruction: intOption(values, 'hnsw-ef-construction') },
    storage: str(values, 'storage') as VectorStorage | undefined,
    index: str(values, 'index') as VectorIndex | undefined,
    ivfflat: { lists: intOption(values, 'ivfflat-lists') },
    schema: str(values, 'schema'),
    viewSchema: str(values, 'view-schema'),
    ownerRole: str(values, 'owner-role'),
    sinkRole: str(values, 'sink-role'),
    groupId: str(values, 'group'),
    instanceId: str(values, 'instance-id'),
    batchMaxRecords: intOption(values, 'batch-size'),
    batchLingerMs: intOption(values, 'linger-ms'),
    batchWait: str(values, 'batch-wait') as BatchWait | undefined,
    batchMaxMs: intOption(values, 'batch-max-ms'),
    sessionTimeoutMs: intOption(values, 'session-timeout-ms'),
    maxKeyBytes: intOption(values, 'max-key-bytes'),
    idleInTransactionTimeoutMs: intOption(values, 'idle-in-transaction-timeout-ms'),
    lockTimeoutMs: intOption(values, 'lock-timeout-ms'),
  })
}

const OPTION_DEFAULTS: Record<string, string> = {
  schema: 'ragstream',
  'view-schema': 'rag',
  'owner-role': 'ragstream_owner',
  'sink-role': 'ragstream_sink',
}

/** An option the user gave (not its default), else the configured value. */
function given(values: CommandInput['values'], name: string, configured: string): string {
  const v = str(values, name)
  return v === undefined || v === OPTION_DEFAULTS[name] ? configured : v
}

/**
 * The sink configuration of an app's version: names from the app (src/app/naming.ts), dimensions,
 * schemas and roles from the configuration, each overridable by its option.
 */
export async function sinkConfigForApp(
  ref: string,
  values: CommandInput['values'],
  config: RagstreamConfig,
): Promise<{ sink: SinkConfig; deployment: Deployment } | undefined> {
  const { resolveAppRef, loadApp } = await import('../../app/load.ts')
  try {
    resolveAppRef(ref, config.apps)
  } catch (error) {
    // not an app: the legacy form, `<topology>` is the SQL name and --dims is required
    if (values.dims !== undefined || values.topic !== undefined) return undefined
    throw error
  }
  const app = await loadApp(ref, config.apps)
  const { deployment } = await import('../../ops/deployment.ts')
  const version = str(values, 'version') ?? str(values, 'topology-version') ?? 'v1'
  const d = deployment({
    app,
    version,
    prefix: str(values, 'prefix'),
    name: str(values, 'name'),
    sqlTopology: str(values, 'sql-topology'),
    config,
  })
  const dims = intOption(values, 'dims') ?? config.sink.dimensions
  const sink = resolveSinkConfig({
    topology: d.names.sqlName,
    version: d.version,
    topic: str(values, 'topic') ?? d.chunkTopic,
    groupId: str(values, 'group') ?? d.names.sinkGroup,
    dims,
    distance: str(values, 'distance') as Distance | undefined,
    hnsw: { m: intOption(values, 'hnsw-m'), efConstruction: intOption(values, 'hnsw-ef-construction') },
    storage: str(values, 'storage') as VectorStorage | undefined,
    index: str(values, 'index') as VectorIndex | undefined,
    ivfflat: { lists: intOption(values, 'ivfflat-lists') },
    schema: given(values, 'schema', config.sink.schema),
    viewSchema: given(values, 'view-schema', config.sink.viewSchema),
    ownerRole: given(values, 'owner-role', config.sink.ownerRole),
    sinkRole: given(values, 'sink-role', config.sink.sinkRole),
    instanceId: str(values, 'instance-id'),
    batchMaxRecords: intOption(values, 'batch-size'),
    batchLingerMs: intOption(values, 'linger-ms'),
    batchWait: str(values, 'batch-wait') as BatchWait | undefined,
    batchMaxMs: intOption(values, 'batch-max-ms'),
    sessionTimeoutMs: intOption(values, 'session-timeout-ms'),
  })
  return { sink, deployment: d }
}

/** Options shared by `sink` and `query` that name the topology version's SQL objects. */
export const SINK_NAME_OPTIONS = {
  'topology-version': {
    type: 'string',
    value: '<v>',
    description: 'topology version (one table per version)',
    default: 'v1',
  },
  dims: { type: 'string', value: '<n>', description: 'embedding dimensions of the topology (vector(<n>))' },
  distance: { type: 'string', value: '<cosine|l2|inner_product>', description: 'HNSW distance', default: 'cosine' },
  schema: { type: 'string', value: '<name>', description: 'schema of the chunk tables', default: 'ragstream' },
  'view-schema': { type: 'string', value: '<name>', description: 'schema of the analyst views', default: 'rag' },
  'owner-role': {
    type: 'string',
    value: '<role>',
    description: 'role that owns tables and runs migrations',
    default: 'ragstream_owner',
  },
  'sink-role': {
    type: 'string',
    value: '<role>',
    description: 'role the sink connects as (DML only)',
    default: 'ragstream_sink',
  },
  'postgres-url': { type: 'string', value: '<url>', description: 'connection URL (default $RAGSTREAM_POSTGRES_URL)' },
} as const

function connect(url: string): Promise<pg.Client> {
  return connectPostgres(url, 'ragstream-cli')
}

/** Refuses to run as a superuser or a BYPASSRLS role, or as the wrong role for the job. */
async function checkRole(client: pg.Client, expected: string, job: string): Promise<void> {
  const r = await client.query<{ who: string; rolsuper: boolean; rolbypassrls: boolean }>(
    'SELECT current_user AS who, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user',
  )
  const { who, rolsuper, rolbypassrls } = r.rows[0]
  if (who !== expected || rolsuper || rolbypassrls) {
    throw new RagstreamError(
      'RS_CONFIG_INVALID',
      `${job} must connect as role ${JSON.stringify(expected)} (not a superuser, no BYPASSRLS); connected as ${JSON.stringify(who)}`,
      {
        context: { path: '--postgres-url' },
        hint: 'pass --postgres-url with that role, see docs/sql.md for the role setup',
      },
    )
  }
}

function list(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((s) => s.trim())
}

/**
 * `ragstream sink <topology>` — materializes the topology's chunk topic into Postgres + pgvector,
 * exactly once. `--migrate` (as the owner role) creates or upgrades the tables first.
 *
 * @example
 *   ragstream sink support --dims 384 --migrate --postgres-url postgres://ragstream_owner@db/rag
 *   ragstream sink support --dims 384 --postgres-url postgres://ragstream_sink@db/rag
 */
export const sinkCommand: CommandSpec = {
  name: 'sink',
  summary:
    "Write a topology's chunk topic into its pgvector table, exactly once (or --migrate / --activate / --grant).",
  args: '<app>',
  options: {
    version: {
      type: 'string',
      value: '<v>',
      description: "the app's version whose chunk topic to write (default v1); same as --topology-version",
    },
    prefix: { type: 'string', value: '<prefix>', description: "the app's source prefix (names its deletions topic)" },
    name: DEPLOYMENT_OPTIONS.name,
    'sql-topology': DEPLOYMENT_OPTIONS['sql-topology'],
    ...SINK_NAME_OPTIONS,
    topic: { type: 'string', value: '<topic>', description: 'chunk topic (default rag.chunks.<topology>)' },
    'hnsw-m': { type: 'string', value: '<n>', description: 'HNSW m', default: '16' },
    'hnsw-ef-construction': { type: 'string', value: '<n>', description: 'HNSW ef_construction', default: '64' },
    storage: {
      type: 'string',
      value: 'vector|halfvec',
      description: 'embedding column type (halfvec: half the size, up to 4000 dims); fixed per version',
      default: 'vector',
    },
    index: {
      type: 'string',
      value: 'hnsw|ivfflat',
      description: 'vector index method; fixed per version',
      default: 'hnsw',
    },
    'ivfflat-lists': {
      type: 'string',
      value: '<n>',
      description: 'IVFFlat lists (with --index ivfflat)',
      default: '100',
    },
    group: {
      type: 'string',
      value: '<id>',
      description: 'consumer group (default ragstream-sink.<topology>.<version>)',
    },
    'instance-id': {
      type: 'string',
      value: '<id>',
      description: 'static group membership id: a restart takes its partitions back at once',
    },
    'batch-size': {
      type: 'string',
      value: '<n>',
      description: 'records per Postgres transaction at most',
      default: '2000',
    },
    'linger-ms': {
      type: 'string',
      value: '<ms>',
      description: 'the longest a batch waits to fill, from its first record',
      default: '200',
    },
    'batch-wait': {
      type: 'string',
      value: 'adaptive|linger',
      description:
        'adaptive: a batch closes once everything committed is read (no wait when idle, bigger batches under load); linger: always wait --linger-ms',
      default: 'adaptive',
    },
    'batch-max-ms': {
      type: 'string',
      value: '<ms>',
      description:
        "time cap of a batch: at most the records written in this long at the sink's recent rate (at least 100); bounds what a partition moved to another sink waits for",
      default: '1000',
    },
    'session-timeout-ms': {
      type: 'string',
      value: '<ms>',
      description: 'Kafka group session timeout',
      default: '10000',
    },
    'max-key-bytes': {
      type: 'string',
      value: '<n>',
      description: 'longest chunk id and entity type + key written; longer records go to sink_rejects',
      default: '1024',
    },
    'idle-in-transaction-timeout-ms': {
      type: 'string',
      value: '<ms>',
      description: 'Postgres ends a sink session frozen inside its transaction after this long',
      default: '10000',
    },
    'lock-timeout-ms': {
      type: 'string',
      value: '<ms>',
      description: 'longest wait of a sink statement for a lock (then retried)',
      default: '5000',
    },
    migrate: {
      type: 'boolean',
      description: 'create/upgrade the tables, views, grants and RLS as the owner role, then exit',
    },
    activate: {
      type: 'boolean',
      description: 'point the topology views at this version (as the owner role), then exit',
    },
    grant: {
      type: 'string',
      value: '<role>',
      description: 'let an analyst role read the views (as the owner role), then exit',
    },
    classifications: {
      type: 'string',
      value: '<a,b>',
      description: 'with --grant: readable classifications (* = all)',
    },
    tenants: { type: 'string', value: '<a,b>', description: 'with --grant: readable tenants (* = all)' },
    'grant-version': {
      type: 'string',
      value: '<v>',
      description: 'with --grant: only this topology version (default every version, later ones included)',
    },
    'isolate-tenant': {
      type: 'string',
      value: '<tenant>',
      description:
        'give a tenant its own table and view, the boundary a GRANT (as the owner role; docs/sql.md), then exit',
    },
    isolated: {
      type: 'boolean',
      description: "with --grant and one --tenants: grant only that isolated tenant's view, nothing shared",
    },
    writers: {
      type: 'string',
      value: '<n>',
      description:
        'sink writers in this process: each a member of the group with its own Postgres connection, writing the partitions it is given (at most one per partition does work)',
      default: '1',
    },
    'metrics-port': {
      type: 'string',
      value: '<port>',
      description:
        'serve Prometheus /metrics (batch size, commit time, rows per writer; freshness, lag) on 127.0.0.1:<port>',
    },
    'shutdown-timeout-ms': {
      type: 'string',
      value: '<ms>',
      description: 'after SIGTERM/SIGINT, exit 1 if the graceful stop has not finished by then',
      default: '30000',
    },
  },
  details: `Logs one JSON object per line on stdout (started, assigned, rebalancing, claim-pending, batch-begin, batch-committed, fenced, retry, writers-removed, stopped, shutdown-timeout, exit-forced).
With --writers N (N > 1) every writer's events carry "writer": 0 … N-1; each writer is an ordinary sink
(its own group member, Postgres connection and owner tokens), so exactly-once holds as for N processes.
With --instance-id X, writer i joins as X-w<i> (static membership per writer). A writer that fails
stops the others and the command exits with its error.
Endpoints: RAGSTREAM_KAFKA_BROKERS, RAGSTREAM_SCHEMA_REGISTRY_URL, RAGSTREAM_POSTGRES_URL (or --postgres-url).
SIGTERM/SIGINT stop gracefully: the current wait is abandoned, the group is left, connections close.
If that has not finished within --shutdown-timeout-ms, the sink logs what it was waiting for
(event shutdown-timeout) and exits 1; a second signal exits 1 at once. Once stopped, it exits; if
a client library still holds the process 2 s later, it logs what is open (event exit-forced) and
exits. Exiting without a commit is safe: the next offsets live in Postgres, in the same transaction
as the rows, so an unfinished batch is simply read again by the next owner.
Exit codes: 0 stopped by SIGINT/SIGTERM or finished, 1 failure or shutdown deadline passed, 69 a service is unreachable, 78 configuration.`,
  async run({ positionals, values, stdout, env, config: given }) {
    const rc = given ?? loadConfig({ env })
    const ref = positionals[0]
    if (ref === undefined || positionals.length > 1)
      throw new ConfigError([{ path: '<app>', message: 'exactly one app is required' }], 'arguments')
    const forApp = await sinkConfigForApp(ref, values, rc)
    const config = forApp?.sink ?? sinkConfigFromOptions(ref, values)
    const writers = intOption(values, 'writers') ?? 1
    if (writers < 1)
      throw new ConfigError([{ path: '--writers', message: `must be an integer ≥ 1 (got ${writers})` }], 'arguments')
    const shutdownTimeoutMs = intOption(values, 'shutdown-timeout-ms') ?? 30_000
    if (shutdownTimeoutMs <= 0)
      throw new ConfigError([{ path: '--shutdown-timeout-ms', message: 'must be a positive integer' }], 'arguments')
    const endpoints = endpointsFromEnv(env)
    const admin =
      values.migrate || values.activate || values.grant !== undefined || values['isolate-tenant'] !== undefined
    // Migrations run as the owner (/postgres/ownerUrl), the sink as the sink role (/postgres/sinkUrl);
    // --postgres-url overrides either.
    const url =
      str(values, 'postgres-url') ??
      (forApp || env.RAGSTREAM_POSTGRES_OWNER_URL || env.RAGSTREAM_POSTGRES_SINK_URL
        ? admin
          ? rc.postgres.ownerUrl
          : rc.postgres.sinkUrl
        : endpoints.postgresUrl)
    const migrations = await import('../../sink/migrations.ts')
    if (admin) {
      const client = await connect(url)
      try {
        await checkRole(client, config.names.ownerRole, 'migrations')
        if (values.migrate) {
          const result = await migrations.migrate(client, config)
          stdout.write(`${JSON.stringify({ event: 'migrated', table: config.names.chunkTable, ...result })}\n`)
        }
        if (values.activate) {
          await migrations.activateVersion(client, config)
          stdout.write(
            `${JSON.stringify({ event: 'activated', view: config.names.view, table: config.names.chunkTable })}\n`,
          )
        }
        const isolation = await import('../../sink/tenant-isolation.ts')
        const isolate = str(values, 'isolate-tenant')
        if (isolate !== undefined) {
          const t = await isolation.isolateTenant(client, config, isolate)
          stdout.write(
            `${JSON.stringify({ event: 'tenant-isolated', tenant: isolate, table: t.table, view: t.view })}\n`,
          )
        }
        if (typeof values.grant === 'string') {
          const tenants = list(str(values, 'tenants'))
          if (values.isolated) {
            if (tenants.length !== 1 || tenants[0] === '*')
              throw new ConfigError(
                [{ path: '--tenants', message: 'with --isolated: exactly one tenant, not *' }],
                'arguments',
              )
            await isolation.grantTenantAnalyst(client, config, values.grant, {
              tenant: tenants[0],
              classifications: list(str(values, 'classifications')),
            })
            const view = isolation.tenantTable(config, tenants[0]).view
            stdout.write(`${JSON.stringify({ event: 'granted', role: values.grant, view })}\n`)
          } else {
            await migrations.grantAnalyst(client, config, values.grant, {
              classifications: list(str(values, 'classifications')),
              tenants,
              ...(str(values, 'grant-version') !== undefined ? { version: str(values, 'grant-version') } : {}),
            })
            stdout.write(`${JSON.stringify({ event: 'granted', role: values.grant, view: config.names.view })}\n`)
          }
        }
      } finally {
        await client.end().catch(() => {})
      }
      return EXIT.ok
    }
    const probe = await connect(url).catch((error: unknown) => {
      throw new RagstreamError(
        'RS_SERVICE_UNAVAILABLE',
        `PostgreSQL is not reachable at ${redactUrl(url)}: ${(error as Error).message}`,
        { context: { service: 'PostgreSQL' }, cause: error },
      )
    })
    try {
      await checkRole(probe, config.names.sinkRole, 'the sink')
    } finally {
      await probe.end().catch(() => {})
    }
    const { SinkWriters } = await import('../../sink/sink-writers.ts')
    const print = eventWriter(stdout, env)
    const port = intOption(values, 'metrics-port')
    const metrics =
      port === undefined
        ? undefined
        : await (
            await import('../../ops/sink-metrics.ts')
          ).startSinkMetrics({ port, config, postgresUrl: url, kafkaBrokers: endpoints.kafkaBrokers, log: print })
    if (metrics) print({ event: 'metrics', url: `http://127.0.0.1:${metrics.port}/metrics` })
    // The progress line (terminal only): rows written, rejects, lag, last commit.
    const counts = { batches: 0, upserted: 0, deleted: 0, rejects: 0, lastCommit: undefined as number | undefined }
    // One metrics chain per writer (its batch-begin → batch-committed pairs are its own).
    const logs = Array.from({ length: writers }, (_, i) => metrics?.logFor(i) ?? print)
    const sink = new SinkWriters({
      writers,
      config,
      postgresUrl: url,
      kafkaBrokers: endpoints.kafkaBrokers,
      schemaRegistryUrl: endpoints.schemaRegistryUrl,
      log: (event, writer) => {
        if (event.event === 'batch-committed' && !event.alreadyCommitted) {
          counts.batches++
          counts.upserted += event.upserted
          counts.deleted += event.deleted
          counts.rejects += event.rejects
          counts.lastCommit = Date.now()
        }
        logs[writer](event)
      },
    })
    const { Admin } = await import('@platformatic/kafka')
    const { consumerLag, totalLag } = await import('../../ops/consumer-lag.ts')
    let lagAdmin: InstanceType<typeof Admin> | undefined
    const stopProgress = startProgress({
      out: stdout,
      env,
      line: async () => {
        lagAdmin ??= new Admin({
          clientId: `${config.groupId}-progress`,
          bootstrapBrokers: [...endpoints.kafkaBrokers],
        })
        const lag = totalLag(await consumerLag(lagAdmin, config.groupId, [config.topic]))
        return `rows upserted ${counts.upserted} deleted ${counts.deleted}  rejects (dead letters) ${counts.rejects}  lag ${lag}  batches ${counts.batches}  last commit ${ago(counts.lastCommit)}`
      },
    })
    const stop = exitUnlessStoppedWithin(
      shutdownTimeoutMs,
      () => sink.stop(),
      () => sink.step,
      print,
    )
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    try {
      await sink.run()
    } finally {
      stopProgress()
      await lagAdmin?.close().catch(() => {})
      await metrics?.close()
      exitWhenStopped(print)
    }
    // The signal handlers stay: a signal during the last steps of the exit still ends the process.
    return EXIT.ok
  },
}
