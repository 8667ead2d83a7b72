/**
 * `ragstream replay`: builds a new version of a topology beside the serving one — a new application id
 * (consumer group, transactional ids, state stores, internal topics), a new chunk topic and a new
 * table — by running the topology from the start of its sources (or from a timestamp) until it has
 * caught up with where they ended when the replay began. The view keeps reading the serving version
 * until `promote`.
 *
 * The embedding cache is keyed by (model, content hash) and shared by every version, so a replay with
 * an unchanged model and chunker finds every vector in the cache: zero embedding calls for content.
 */
import { Admin } from '@platformatic/kafka'
import { ConfigError } from '../errors.ts'
import type { Logger } from '../observability/logger.ts'
import type { Metrics } from '../observability/metrics.ts'
import { offsetsForTimestamp, type PartitionLag } from './consumer-lag.ts'
import { deployment, sourceTopics, type Deployment, type DeploymentOptions } from './deployment.ts'
import { listVersions, tableFreshness } from './index-versions.ts'
import { ReplayProgress, type PartProgress, type ReplayEstimate } from './replay-progress.ts'
import { buildVectorIndex, type IndexBuildOptions } from '../sink/migrations.ts'
import { connectPostgres, Pipeline, pipelineLogging } from './pipeline.ts'

export interface ReplayOptions extends Omit<DeploymentOptions, 'version'> {
  readonly toVersion: string
  /** `earliest` (default) or a point in time: each source partition starts at its first record at or after it. */
  readonly from?: 'earliest' | Date
  /** Keep running after catching up (until the signal aborts), so the new version stays fresh. */
  readonly follow?: boolean
  readonly metrics?: Metrics
  /** Warnings of processor and sink (retries, aborts, fencing); default silent. */
  readonly log?: Logger
  /** Progress output (one line a second; a redrawn bar on a terminal). */
  readonly out: NodeJS.WritableStream & { isTTY?: boolean }
  readonly signal?: AbortSignal
  /** Give up if not caught up after this long; default none. */
  readonly timeoutMs?: number
  /**
   * Bulk mode: a new version's table is loaded without its vector index (still exactly once through
   * the sink's offsets table); once caught up the index is built in one pass, and only then can the
   * version be promoted. Ignored for a version that already has its index.
   */
  readonly bulk?: boolean
  /** maintenance_work_mem and parallel workers of the index build (bulk mode). */
  readonly indexBuild?: IndexBuildOptions
}

export interface ReplayResult {
  readonly deployment: Deployment
  readonly caughtUp: boolean
  readonly records: number
  readonly rows: number
  readonly seconds: number
  /** Provider calls include the one startup check of the provider; cache misses are the texts that needed the provider. */
  readonly embedding: {
    readonly calls: number
    readonly cacheHits: number
    readonly cacheMisses: number
    /** CPU time a local model spent (its cost); 0 for hashing and remote services. */
    readonly cpuMs: number
  }
  /** Bulk mode: how long the one index build took (undefined when none ran). */
  readonly indexBuildSeconds?: number
}

const sum = (lags: readonly PartitionLag[], f: (l: PartitionLag) => number): number =>
  lags.reduce((s, l) => s + f(l), 0)

/**
 * `[####......]  40% 1200/3000 records (processor 1000/1200, sink 200/~1800 chunks)  600/s  ETA 3s`:
 * the whole job's records, `~` where a total is still an estimate; in bulk mode the index build follows.
 */
export function progressLine(e: ReplayEstimate, elapsedSeconds: number, indexBuildFollows: boolean): string {
  const part = (p: PartProgress): string => `${p.done}/${p.exact ? '' : '~'}${p.total}`
  const rate = e.job.done / Math.max(elapsedSeconds, 0.001)
  return `${progressBar(e.fraction)} ${e.job.done}/${e.job.total} records (processor ${part(e.processor)}, sink ${part(e.sink)} chunks)  ${rate.toFixed(0)}/s  ETA ${eta(e.etaSeconds)}${indexBuildFollows ? ' + the index build' : ''}`
}

export function progressBar(fraction: number, width = 30): string {
  const f = Math.min(1, Math.max(0, fraction))
  const full = Math.round(f * width)
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(f * 100).toFixed(0).padStart(3)}%`
}

function eta(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--'
  if (seconds < 60) return `${Math.ceil(seconds)}s`
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`
}

/** Starts a fresh group at the first offsets at or after `from` (only when the group has committed nothing). */
async function seekGroupToTimestamp(d: Deployment, sources: readonly string[], from: Date): Promise<void> {
  const admin = new Admin({
    clientId: `${d.applicationId}-replay-seek`,
    bootstrapBrokers: [...d.config.endpoints.kafkaBrokers],
  })
  try {
    const [group] = await admin.listConsumerGroupOffsets({ groups: [d.applicationId] })
    if ((group?.topics ?? []).some((t) => t.partitions.some((p) => p.committedOffset >= 0n))) return
    const offsets = await offsetsForTimestamp(admin, sources, from.getTime())
    const topics = new Map<string, { partition: number; offset: bigint }[]>()
    for (const [key, offset] of offsets) {
      const at = key.lastIndexOf(':')
      const list = topics.get(key.slice(0, at)) ?? []
      list.push({ partition: Number(key.slice(at + 1)), offset })
      topics.set(key.slice(0, at), list)
    }
    await admin.alterConsumerGroupOffsets({
      groupId: d.applicationId,
      topics: [...topics].map(([name, partitionOffsets]) => ({ name, partitionOffsets })),
    })
  } finally {
    await admin.close().catch(() => {})
  }
}

/** Prints the index build's phase and progress (pg_stat_progress_create_index) once a second until stopped. */
function watchIndexBuild(
  o: ReplayOptions,
  say: (line: string) => void,
  backendOf: () => number | undefined,
): () => Promise<void> {
  let stopped = false
  const started = Date.now()
  const done = (async () => {
    const watcher = await connectPostgres(o.config.postgres.ownerUrl, 'ragstream-replay-progress').catch(
      () => undefined,
    )
    if (!watcher) return
    try {
      while (!stopped) {
        await new Promise((resolve) => setTimeout(resolve, 1000))
        if (stopped) break
        const pid = backendOf()
        const row = (
          await watcher
            .query<{ phase: string; done: string; total: string }>(
              `SELECT phase, coalesce(nullif(tuples_done, 0), blocks_done) AS done,
                      coalesce(nullif(tuples_total, 0), blocks_total) AS total
               FROM pg_stat_progress_create_index WHERE pid = $1`,
              [pid ?? 0],
            )
            .catch(() => ({ rows: [] }))
        ).rows[0]
        if (!row) continue
        const fraction = Number(row.total) > 0 ? Number(row.done) / Number(row.total) : 0
        const elapsed = (Date.now() - started) / 1000
        const left = fraction > 0 ? (elapsed / fraction) * (1 - fraction) : Infinity
        say(`  index: ${progressBar(fraction)} ${row.phase} ${row.done}/${row.total}  ETA ${eta(left)} (this phase)`)
      }
    } finally {
      await watcher.end().catch(() => {})
    }
  })()
  return async () => {
    stopped = true
    await done
  }
}

/** Builds the deferred vector index of the replayed version, reporting the phase with progress. */
async function buildIndexPhase(o: ReplayOptions, d: Deployment, say: (line: string) => void): Promise<number> {
  const owner = await connectPostgres(o.config.postgres.ownerUrl, 'ragstream-replay-index')
  const pid = (await owner.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid
  say(`  phase 2/2: building the ${d.sink.index} index of ${d.sink.names.chunkTable} once`)
  const stop = watchIndexBuild(o, say, () => pid)
  try {
    const result = await buildVectorIndex(owner, d.sink, o.indexBuild)
    say(`  index built in ${result.seconds.toFixed(1)}s; ${d.sink.topology}@${d.version} is now promotable`)
    return result.seconds
  } finally {
    await stop()
    await owner.end().catch(() => {})
  }
}

export async function replay(o: ReplayOptions): Promise<ReplayResult> {
  const planned = deployment({ ...o, version: o.toVersion })
  // Bulk mode: the version's table is created without its vector index (see buildIndexPhase).
  const d: Deployment = o.bulk ? { ...planned, sink: { ...planned.sink, deferIndex: true } } : planned
  const owner = await connectPostgres(o.config.postgres.ownerUrl, 'ragstream-replay').catch(() => undefined)
  if (owner) {
    try {
      const versions = await listVersions(owner, d.sink).catch(() => [])
      if (versions.some((v) => v.version === d.version && v.active)) {
        throw new ConfigError(
          [
            {
              path: '--to-version',
              message: `${d.sink.topology}@${d.version} is the serving version; replay into a new one (e.g. v${versions.length + 1})`,
            },
          ],
          'replay',
        )
      }
    } finally {
      await owner.end().catch(() => {})
    }
  }
  const sources = sourceTopics(d)
  if (o.from instanceof Date) await seekGroupToTimestamp(d, sources, o.from)

  const say = (line: string): void => void o.out.write(`${line}\n`)
  say(
    `replay ${d.topology} → ${d.sink.topology}@${d.version}: processor ${d.applicationId}, chunk topic ${d.chunkTopic}, table ${d.sink.names.chunkTable}`,
  )
  say(
    `  from ${o.from instanceof Date ? o.from.toISOString() : 'earliest'}; the view ${d.sink.names.view} keeps serving until promote`,
  )
  if (o.bulk) say('  bulk mode: phase 1/2 loads the table without its vector index; phase 2/2 builds the index once')
  const pipeline = await Pipeline.start({
    deployment: d,
    metrics: o.metrics,
    instanceId: 'replay',
    ...(o.log ? pipelineLogging(o.log) : {}),
  })
  const started = Date.now()
  let caughtUp = false
  let indexBuildSeconds: number | undefined
  try {
    // The target: where the sources end now. Records arriving later are live traffic, not replay.
    const first = await pipeline.detailedLag()
    const target = new Map(first.sources.map((l) => [`${l.topic}:${l.partition}`, BigInt(l.end)]))
    const progress = new ReplayProgress(first, Date.now())
    let stable = 0
    let lastSinkLag = -1
    for (;;) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000)
        o.signal?.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true })
      })
      if (o.signal?.aborted) break
      const lag = await pipeline.detailedLag()
      const e = progress.update(lag, Date.now())
      const sinkLag = sum(lag.sink, (l) => l.lag)
      const elapsed = (Date.now() - started) / 1000
      const p = pipeline.progress()
      const line = `  ${progressLine(e, elapsed, Boolean(o.bulk) && indexBuildSeconds === undefined && !caughtUp)}  rows ${p.sink.upserted - p.sink.deleted}  embedding calls ${p.embedding.calls} cache hits ${p.embedding.cacheHits}`
      if (o.out.isTTY) o.out.write(`\r${line}\u001b[K`)
      else say(line)
      // Caught up: every source partition reached its target, repartition topics drained (a marker may
      // remain), and the sink has read the chunk topic to its end (or to its final marker) twice in a row.
      const sourcesDone = lag.sources.every(
        (l) => BigInt(l.end) - BigInt(l.lag) >= (target.get(`${l.topic}:${l.partition}`) ?? 0n),
      )
      const repartitionsDone = lag.repartitions.every((l) => l.lag <= 1)
      const sinkDone = lag.sink.every((l) => l.lag <= 1) && sinkLag === lastSinkLag
      lastSinkLag = sinkLag
      stable = sourcesDone && repartitionsDone && sinkDone ? stable + 1 : 0
      if (stable >= 2 && !caughtUp) {
        caughtUp = true
        if (o.out.isTTY) o.out.write('\n')
        say(`  caught up in ${elapsed.toFixed(1)}s`)
        if (!o.follow) break
        // Following: the index is built now, while the sink waits on the table lock (it retries), then
        // the sink goes on with incremental upserts into the indexed table.
        if (o.bulk) indexBuildSeconds = await buildIndexPhase(o, d, say)
        say('  following live changes (Ctrl-C to stop)')
      }
      if (o.timeoutMs !== undefined && Date.now() - started > o.timeoutMs && !caughtUp) break
    }
    const p = pipeline.progress()
    await pipeline.stop()
    // The load is complete (nothing writes the table now): build the index once.
    if (o.bulk && caughtUp && indexBuildSeconds === undefined) indexBuildSeconds = await buildIndexPhase(o, d, say)
    const reader = await connectPostgres(o.config.postgres.sinkUrl, 'ragstream-replay')
    const rows = await tableFreshness(reader, d.sink.names.chunkTable).finally(() => reader.end().catch(() => {}))
    const e = pipeline.progress().embedding
    return {
      deployment: d,
      caughtUp,
      records: p.processor.recordsIn,
      rows: rows.rows,
      seconds: (Date.now() - started) / 1000,
      embedding: { calls: e.calls, cacheHits: e.cacheHits, cacheMisses: e.cacheMisses, cpuMs: e.cpuMs },
      indexBuildSeconds,
    }
  } finally {
    await pipeline.stop()
  }
}
