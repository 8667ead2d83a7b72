/**
 * `ragstream demo`: the support-copilot topology end to end on the local stack, in one process —
 * fresh topics, the generator (backfill, then a trickle of live changes), the processor (exactly once,
 * Redis stores) and the pgvector sink, a progress line every second, then a nearest-neighbour query
 * as an analyst role (row-level security applies) and its results, then `ragstream forget --wait` for
 * the customer with the most rows, and its receipt (0 rows remain).
 *
 * Every run is a new version `r<run id>` of the SQL topology `support_demo`: the view `rag.support_demo`
 * is promoted to it and earlier demo versions (tables, topics, consumer groups, Redis keys) are dropped,
 * so the machine does not fill up with old demos.
 */
import { Admin } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import type pg from 'pg'
import type { RagstreamConfig } from '../config/file.ts'
import { checkKafka, checkPostgres, checkRedis, checkSchemaRegistry } from '../config/services.ts'
import { forgetCommand } from '../cli/commands/forget.ts'
import { formatReceipt, type ForgetReceipt } from '../governance/forget/receipt.ts'
import { defaultLocalOrHashing, providerForModel, type ProviderEmbeddingConfig } from '../embedding/config.ts'
import { generate, type GenerateProgress } from '../generator/generator.ts'
import { dropSqlSource, generateSql, prepareSqlSource, sqlSourceEndpoints } from '../generator/sql-source.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import { ensureLoginRole, grantAnalyst } from '../sink/migrations.ts'
import { formatNeighbours, nearestNeighbours, type NeighbourRow } from '../sink/query.ts'
import { checkIdentifier } from '../sink/identifiers.ts'
import { ConfigError } from '../errors.ts'
import { loadApp } from '../app/load.ts'
import { deployment, type Deployment } from './deployment.ts'
import { dropInactiveVersions, promoteVersion, tableFreshness, type Freshness } from './index-versions.ts'
import { connectPostgres, Pipeline, pipelineLogging } from './pipeline.ts'

export interface DemoOptions {
  readonly config: RagstreamConfig
  /** Seconds of live changes after the backfill before the query. */
  readonly durationSeconds: number
  /**
   * After the live time, how long to wait for the pipeline to drain (sources, internal topics and the
   * chunk topic read to the end) before the query and the forget step; default 20 s. A demo that did not
   * drain queries what is visible, and its forget step races the rows still on their way.
   */
  readonly drainTimeoutSeconds?: number
  readonly backfill: number
  readonly rate: number
  readonly seed?: number
  readonly partitions?: number
  /** Base of the demo's Kafka names and Redis keys; default `demo-support-copilot`. Runs with another base never touch each other. */
  readonly name?: string
  /** SQL topology of the demo; default `support_demo`. */
  readonly sqlTopology?: string
  /** Analyst role the query runs as; default `ragstream_demo_analyst`. */
  readonly analystRole?: string
  /** Embedding cache prefix (tests use their own); default the shared one. */
  readonly cachePrefix?: string
  /** Default: the local model (all-minilm-l6-v2-int8) when installed, else the hashing embedder. */
  readonly embedding?: ProviderEmbeddingConfig
  readonly queryText?: string
  readonly metrics?: Metrics
  /** Warnings of processor and sink (retries, aborts, fencing); default silent. */
  readonly log?: Logger
  readonly out: NodeJS.WritableStream
  /** Aborting stops everything cleanly (Ctrl-C); the demo then skips the query. */
  readonly signal?: AbortSignal
  /** After the query, forget the customer with the most rows and print the receipt; default true. */
  readonly forget?: boolean
  /**
   * `postgres`: the changes are written as SQL into the CDC source database and Debezium captures them
   * (src/generator/sql-source.ts); `kafka` (default here, what tests use): envelopes straight to Kafka.
   */
  readonly source?: 'postgres' | 'kafka'
}

export interface DemoResult {
  readonly deployment: Deployment
  readonly interrupted: boolean
  /** The pipeline drained within the drain timeout (false: the query and forget saw rows still arriving). */
  readonly drained: boolean
  readonly rows: number
  readonly neighbours: readonly NeighbourRow[]
  readonly generated: GenerateProgress | undefined
  /** The forget step: the subject forgotten and the receipt `ragstream forget --wait` printed. */
  readonly forgotten?: { readonly subject: string; readonly rows: number; readonly receipt: ForgetReceipt }
}

export const DEMO_QUERY = 'login with SSO loops back to the sign-in page'

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true })
  })

function seconds(n: number | null): string {
  return n === null ? '–' : n < 10 ? `${n.toFixed(2)}s` : `${n.toFixed(1)}s`
}

/** A freshness figure as short as it reads: milliseconds under a second (ragstream's part is tens of them). */
function duration(n: number): string {
  return n < 1 ? `${Math.round(n * 1000)}ms` : seconds(n)
}

/** p50/p99 of one part of the freshness split, or – when no row of the window carries it. */
function split(part: { readonly p50: number; readonly p99: number } | null): string {
  return part === null ? '–' : `${duration(part.p50)}/${duration(part.p99)}`
}

/**
 * The demo's last word on freshness: the rows of the live changes (changed at their source after the
 * backfill), split at their append to the source topic into capture (Debezium's share) and ragstream.
 */
export function freshnessSplitLine(live: Freshness | undefined): string {
  if (live === undefined || live.windowRows === 0) return 'live changes: none indexed (no live phase, or --rate 0)'
  const part = (p: { readonly p50: number; readonly p99: number } | null): string =>
    p === null ? 'p50 –, p99 –' : `p50 ${duration(p.p50)}, p99 ${duration(p.p99)}`
  return `live changes (${live.windowRows} rows): capture (source commit → source topic) ${part(live.capture)}; ragstream (source topic → visible in Postgres) ${part(live.ragstream)}`
}

/** A demo run's id: `r` + Date.now() in base 36 (8 characters until 2059). */
const RUN_ID = '(r[0-9a-z]{8})'

/**
 * The Kafka topics, consumer groups, Redis keys and SQL tables of earlier runs of the demo named
 * `base`, by exact name: a run `R` of `base` owns the topics `<base>.R.*` (sources, deletions),
 * `<base>-R-*` (internal) and `rag.chunks.<base>.R`, the groups `<base>-R` and
 * `ragstream-sink.<sql topology>.R`, the Redis keys `rs:{<base>-R:*` and the version `R` of the SQL
 * topology. Nothing of a demo with another name (`<base>-rx`, or the same SQL topology under another
 * name) matches, and nothing of `keep`.
 */
export async function dropOldDemoRuns(
  config: RagstreamConfig,
  base: string,
  keep: Deployment,
  owner: pg.Client,
): Promise<void> {
  const admin = new Admin({ clientId: 'ragstream-demo-cleanup', bootstrapBrokers: [...config.endpoints.kafkaBrokers] })
  const redis = new Redis(config.endpoints.redisUrl, { lazyConnect: true })
  redis.on('error', () => {})
  try {
    const b = base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    const runOf = (pattern: string, name: string): string | undefined => new RegExp(pattern).exec(name)?.[1]
    const topicRun = (t: string): string | undefined =>
      runOf(`^${b}\\.${RUN_ID}\\.`, t) ?? runOf(`^${b}-${RUN_ID}-`, t) ?? runOf(`^rag\\.chunks\\.${b}\\.${RUN_ID}$`, t)
    const runs = new Set<string>()
    const topics = (await admin.listTopics()).filter((t) => {
      const run = topicRun(t)
      if (run === undefined || run === keep.version) return false
      runs.add(run)
      return true
    })
    const allGroups = [...(await admin.listGroups()).keys()]
    for (const g of allGroups) {
      const run = runOf(`^${b}-${RUN_ID}$`, g)
      if (run !== undefined && run !== keep.version) runs.add(run)
    }
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {})
    const groups = allGroups.filter((g) =>
      [...runs].some((run) => g === `${base}-${run}` || g === `ragstream-sink.${keep.sink.topology}.${run}`),
    )
    if (groups.length > 0) await admin.deleteGroups({ groups }).catch(() => {})
    // Only this demo's earlier versions of the SQL topology: another demo may share the topology.
    await dropInactiveVersions(owner, keep.sink, (version) => runs.has(version))
    await redis.connect()
    const stale = new Set<string>()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `rs:{${base}-r????????:*`, 'COUNT', 1000)
      for (const k of keys) {
        const run = runOf(`^rs:\\{${b}-${RUN_ID}:`, k)
        if (run !== undefined && runs.has(run)) stale.add(k)
      }
      cursor = next
    } while (cursor !== '0')
    if (stale.size > 0) await redis.del(...stale)
  } finally {
    await admin.close().catch(() => {})
    redis.disconnect()
  }
}

/** Marks the roles the demo created, so a later run reuses its own role and nobody else's. */
const DEMO_ROLE_COMMENT = 'analyst role created by ragstream demo'
export const DEFAULT_DEMO_ANALYST = 'ragstream_demo_analyst'

/**
 * Before anything runs: the demo grants its analyst every tenant and classification of the demo
 * topology, so it only ever uses a role it created itself (or the reserved default name). An existing
 * role of someone else is refused (RS_CONFIG_INVALID, exit 78), never silently widened.
 */
export async function checkDemoAnalyst(config: RagstreamConfig, role: string): Promise<void> {
  checkIdentifier('--analyst-role', role)
  const admin = await connectPostgres(config.postgres.adminUrl, 'ragstream-demo')
  try {
    const found = await admin.query<{ comment: string | null }>(
      `SELECT shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1`,
      [role],
    )
    if (found.rowCount && found.rows[0].comment !== DEMO_ROLE_COMMENT && role !== DEFAULT_DEMO_ANALYST)
      throw new ConfigError(
        [
          {
            path: '--analyst-role',
            message: `role ${role} already exists and was not created by the demo, which would grant it every tenant and classification of the demo topology`,
          },
        ],
        'arguments',
        'RS_CONFIG_INVALID',
        'give a name that does not exist yet (the demo creates it), or leave --analyst-role out',
      )
  } finally {
    await admin.end().catch(() => {})
  }
}

/** The analyst the demo queries as: reads every classification and tenant of the demo topology, through the view only. */
export async function ensureAnalyst(config: RagstreamConfig, d: Deployment, role: string): Promise<string> {
  const admin = await connectPostgres(config.postgres.adminUrl, 'ragstream-demo')
  try {
    await ensureLoginRole(admin, role, DEMO_ROLE_COMMENT)
  } finally {
    await admin.end().catch(() => {})
  }
  const owner = await connectPostgres(config.postgres.ownerUrl, 'ragstream-demo')
  try {
    await grantAnalyst(owner, d.sink, role, { classifications: ['*'], tenants: ['*'] })
  } finally {
    await owner.end().catch(() => {})
  }
  const url = new URL(config.postgres.adminUrl)
  url.username = role
  url.password = ''
  return url.toString()
}

/**
 * The forget step: the customer with the most rows (read as the sink role, which row-level security
 * lets see every row) is forgotten through `ragstream forget --wait` itself, with the owner role that
 * reads the audit table; its receipt is printed as that command prints it.
 */
async function forgetBusiestCustomer(
  config: RagstreamConfig,
  d: Deployment,
  sinkReader: pg.Client,
  say: (line: string) => void,
): Promise<DemoResult['forgotten']> {
  const busiest = await sinkReader.query<{ subject: string; n: number }>(
    `SELECT s AS subject, count(*)::int AS n FROM ${d.sink.names.chunkTable}, unnest(subjects) AS s WHERE s LIKE 'customer:%' GROUP BY s ORDER BY n DESC, s LIMIT 1`,
  )
  const row = busiest.rows[0]
  if (row === undefined || d.deletionsTopic === undefined) {
    say('\n(no customer rows to forget)')
    return undefined
  }
  say('')
  say(
    `$ ragstream forget --subject ${row.subject} --reason "ragstream demo" --topology ${d.sink.topology} --deletions-topic ${d.deletionsTopic} --wait   (${row.n} rows)`,
  )
  let json = ''
  const capture = { write: (chunk: string) => ((json += chunk), true) } as unknown as NodeJS.WritableStream
  const values = {
    subject: row.subject,
    reason: 'ragstream demo',
    'requested-by': 'ragstream demo',
    topology: d.sink.topology,
    processor: d.applicationId,
    'deletions-topic': d.deletionsTopic,
    schema: d.config.sink.schema,
    wait: true,
    timeout: '60',
    json: true,
    'postgres-url': config.postgres.ownerUrl,
    mode: 'FOREVER',
  }
  await forgetCommand.run({ positionals: [], values, stdout: capture, stderr: capture, env: config.env, config })
  const receipt = JSON.parse(json) as ForgetReceipt
  say(formatReceipt(receipt))
  say('')
  return { subject: row.subject, rows: row.n, receipt }
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const { config, out } = o
  const say = (line: string): void => void out.write(`${line}\n`)
  const e = config.endpoints
  await Promise.all([
    checkKafka(e),
    checkRedis(e.redisUrl),
    checkPostgres(config.postgres.adminUrl),
    checkSchemaRegistry(e.schemaRegistryUrl),
  ])
  const analystRole = o.analystRole ?? DEFAULT_DEMO_ANALYST
  await checkDemoAnalyst(config, analystRole)

  const runId = Date.now().toString(36)
  const base = o.name ?? 'demo-support-copilot'
  const chosen: { config: ProviderEmbeddingConfig; fallback?: string } = o.embedding
    ? { config: o.embedding }
    : defaultLocalOrHashing(config.env)
  const d = deployment({
    app: await loadApp('support-copilot'),
    version: `r${runId}`,
    name: base,
    prefix: `${base}.r${runId}`,
    sqlTopology: o.sqlTopology ?? 'support_demo',
    cachePrefix: o.cachePrefix,
    embedding: chosen.config,
    config,
  })
  const partitions = o.partitions ?? 3
  say(`ragstream demo — support-copilot, run r${runId}`)
  say(
    `  sources   ${d.prefix}.public.tickets, ${d.prefix}.public.customers, ${d.prefix}.products (${partitions} partitions each)`,
  )
  const sqlSource = o.source === 'postgres' ? sqlSourceEndpoints(config.env, base) : undefined
  if (sqlSource)
    say(
      `  captured  tickets, customers: SQL into ${new URL(sqlSource.sourceUrl).host}${new URL(sqlSource.sourceUrl).pathname} → Debezium (Kafka Connect ${sqlSource.connectUrl}); products: upserts`,
    )
  say(`  processor ${d.applicationId} (exactly once, Redis state stores) → ${d.chunkTopic}`)
  say(`  sink      ${d.sink.names.chunkTable} (pgvector, HNSW), analysts read ${d.sink.names.view}`)
  say(
    `  embedding ${d.embedding.kind === 'local' ? `local:${d.embedding.model ?? 'all-minilm-l6-v2-int8'} (ONNX in a worker thread)` : d.embedding.kind}${chosen.fallback ? ` — ${chosen.fallback}` : ''}`,
  )

  // Fresh source topics first: the processor compiles against their partition count.
  await generate({
    brokers: e.kafkaBrokers,
    seed: o.seed ?? 42,
    server: d.prefix!,
    withSchema: false,
    backfill: 0,
    rate: 0,
    // LogAppendTime: a source record's timestamp is its append, where capture ends and ragstream begins.
    createTopics: { partitions, appendTime: true },
  })
  if (sqlSource) await prepareSqlSource({ ...sqlSource, base, server: d.prefix! })
  const pipeline = await Pipeline.start({
    deployment: d,
    metrics: o.metrics,
    instanceId: `demo-${runId}`,
    ...(o.log ? pipelineLogging(o.log) : {}),
  })
  const owner = await connectPostgres(config.postgres.ownerUrl, 'ragstream-demo')
  let sinkReader: pg.Client | undefined
  let generator: Promise<GenerateProgress | undefined> = Promise.resolve(undefined)
  const stopGenerator = new AbortController()
  const interrupted = (): boolean => o.signal?.aborted ?? false
  try {
    const promoted = await promoteVersion(owner, d.sink)
    await dropOldDemoRuns(config, base, d, owner).catch(() => {})
    say(
      `  view      ${d.sink.names.view} now reads ${d.version}${promoted.previous && promoted.previous !== d.version ? ` (was ${promoted.previous}, dropped)` : ''}`,
    )
    say('')

    let generated: GenerateProgress | undefined
    const onAbort = (): void => stopGenerator.abort()
    o.signal?.addEventListener('abort', onAbort, { once: true })
    const generating = {
      brokers: e.kafkaBrokers,
      seed: o.seed ?? 42,
      server: d.prefix!,
      backfill: o.backfill,
      rate: o.rate,
      signal: stopGenerator.signal,
      onProgress: (p: GenerateProgress) => (generated = p),
    }
    generator = (
      sqlSource
        ? generateSql({ ...generating, ...sqlSource, base, partitions })
        : generate({ ...generating, withSchema: false })
    ).then((p) => (generated = p))
    generator.catch(() => {})

    sinkReader = await connectPostgres(config.postgres.sinkUrl, 'ragstream-demo-progress')
    const started = Date.now()
    let last = { at: started, in: 0, out: 0 }
    const liveUntil = started + o.durationSeconds * 1000
    let caughtUpAt: number | undefined
    let drainedReadings = 0
    let drainedAt: number | undefined
    const drainTimeoutMs = (o.drainTimeoutSeconds ?? 20) * 1000
    // The live phase's changes: the final line's figures cover the changes made from here on, not the backfill.
    let liveSince: number | undefined
    say(
      '  time   phase     gen    in/s   out/s   lag(proc/sink)  capture p50/p99  ragstream p50/p99   rows    dlq  embed calls/hits/cpu',
    )
    for (;;) {
      await sleep(1000, o.signal)
      if (interrupted()) break
      const now = Date.now()
      const p = pipeline.progress()
      const fresh = await tableFreshness(sinkReader, d.sink.names.chunkTable, 30)
      const dt = Math.max(0.001, (now - last.at) / 1000)
      const sinkRows = p.sink.upserted + p.sink.deleted
      const lagP = p.processorLag.reduce((s, l) => s + l.lag, 0)
      const lagS = p.sinkLag.reduce((s, l) => s + l.lag, 0)
      const phase = now < liveUntil ? (generated?.phase === 'trickle' ? 'live' : 'backfill') : 'drain'
      if (phase === 'live') liveSince ??= last.at
      say(
        `  ${String(Math.round((now - started) / 1000)).padStart(3)}s   ${phase.padEnd(8)} ${String(generated?.records ?? 0).padStart(5)} ${((p.processor.recordsIn - last.in) / dt).toFixed(0).padStart(7)} ${((sinkRows - last.out) / dt).toFixed(0).padStart(7)}   ${`${lagP}/${lagS}`.padStart(13)}  ${split(fresh.capture).padStart(15)}  ${split(fresh.ragstream).padStart(17)}  ${String(fresh.rows).padStart(6)} ${String(p.processor.deadLetters).padStart(5)}  ${p.embedding.calls}/${p.embedding.cacheHits}/${(p.embedding.cpuMs / 1000).toFixed(1)}s`,
      )
      last = { at: now, in: p.processor.recordsIn, out: sinkRows }
      if (now >= liveUntil) {
        // Live time is over: stop the generator, give the pipeline a bounded moment to drain.
        stopGenerator.abort()
        // Drained: sources read to the end, repartition topics and the chunk topic too (a lag of 1 on
        // those transactional topics is the last commit marker), twice in a row.
        const lag = await pipeline.detailedLag()
        const drained =
          lag.sources.every((l) => l.lag === 0) && [...lag.repartitions, ...lag.sink].every((l) => l.lag <= 1)
        drainedReadings = drained ? drainedReadings + 1 : 0
        if (drainedReadings >= 2) {
          drainedAt = now
          break
        }
        caughtUpAt ??= now
        if (now - caughtUpAt > drainTimeoutMs) {
          say(`  (not fully drained after ${drainTimeoutMs / 1000} s; querying what is visible)`)
          break
        }
      }
    }
    o.signal?.removeEventListener('abort', onAbort)
    stopGenerator.abort()
    generated = (await generator.catch(() => undefined)) ?? generated

    const rows = (await tableFreshness(sinkReader, d.sink.names.chunkTable)).rows
    if (interrupted()) {
      say('\ninterrupted: stopping generator, processor and sink…')
      return { deployment: d, interrupted: true, drained: false, rows, neighbours: [], generated }
    }
    const fresh = await tableFreshness(sinkReader, d.sink.names.chunkTable)
    say('')
    say(
      `indexed ${fresh.rows} chunks; freshness over all rows p50 ${seconds(fresh.p50)}, p99 ${seconds(fresh.p99)} (visible_at − source_ts)`,
    )
    const live =
      liveSince === undefined
        ? undefined
        : await tableFreshness(sinkReader, d.sink.names.chunkTable, undefined, liveSince)
    say(freshnessSplitLine(live))

    const analystUrl = await ensureAnalyst(config, d, analystRole)
    const text = o.queryText ?? DEMO_QUERY
    const analyst = await connectPostgres(analystUrl, 'ragstream-demo-query')
    let neighbours: NeighbourRow[]
    try {
      // The query embeds like the rows: the model id they record, with the model's query prefix.
      const provider = providerForModel(pipeline.embeddingModel, config.env)
      const { vectors } = await provider.embedBatch([text]).finally(() => provider.close?.())
      neighbours = await nearestNeighbours(analyst, {
        view: d.sink.names.view,
        distance: d.sink.distance,
        vector: Array.from(vectors[0]),
        filter: { columns: [], metadata: {} },
        k: 5,
      })
    } finally {
      await analyst.end().catch(() => {})
    }
    say('')
    say(
      `$ ragstream query ${JSON.stringify(text)} --topology ${d.sink.topology} -k 5   (as ${analystRole}; row-level security applies)`,
    )
    out.write(neighbours.length === 0 ? 'no matching rows\n' : formatNeighbours(neighbours))
    say('')
    say(
      `The same in psql: SELECT entity_key, left(content, 60) FROM ${d.sink.names.view} ORDER BY embedding <=> $1 LIMIT 5;`,
    )
    const forgotten = o.forget === false ? undefined : await forgetBusiestCustomer(config, d, sinkReader, say)
    say(
      `Status: ragstream status support-copilot --name ${base} --sql-topology ${d.sink.topology} --prefix ${d.prefix}`,
    )
    return {
      deployment: d,
      interrupted: false,
      drained: drainedAt !== undefined,
      rows: fresh.rows,
      neighbours,
      generated,
      ...(forgotten ? { forgotten } : {}),
    }
  } finally {
    stopGenerator.abort()
    await generator.catch(() => undefined)
    await pipeline.stop()
    await Promise.allSettled([owner.end(), sinkReader?.end()])
    // The run's connector and replication slot go (a slot nobody reads keeps WAL); tables and topics stay.
    if (sqlSource) await dropSqlSource({ ...sqlSource, server: d.prefix! }).catch(() => {})
  }
}
