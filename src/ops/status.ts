/**
 * `ragstream status`: what an operator asks first — is each version keeping up (consumer lag of its
 * processor and its sink, per partition, from Kafka end offsets vs committed offsets), how fresh is
 * what analysts read (Postgres), where are the state stores (Redis checkpoints vs changelog ends),
 * and which version does the view serve.
 */
import { Admin } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import type { App } from '../app/app.ts'
import type { RagstreamConfig } from '../config/file.ts'
import { consumerLag, totalLag, type PartitionLag } from './consumer-lag.ts'
import { buildTopology, deployment, deploymentServices, type Deployment } from './deployment.ts'
import { listVersions, tableFreshness, type Freshness, type IndexVersion } from './index-versions.ts'
import { groupStates, type GroupMemberTasks } from './group-members.ts'
import { formatSeconds, LagClock, type GroupLagSeconds } from './lag-seconds.ts'
import { connectPostgres } from './pipeline.ts'
import { terminalSafe } from '../security/terminal.ts'

export interface StoreCheckpoint {
  readonly store: string
  readonly partition: number
  /** Next changelog offset the Redis copy reflects; null = Redis holds nothing for it (restored from 0 on start). */
  readonly checkpoint: string | null
  /** read_committed end of the changelog partition. */
  readonly changelogEnd: string | null
}

export interface VersionStatus {
  readonly version: string
  readonly active: boolean
  readonly applicationId: string
  readonly chunkTopic: string
  readonly table: string
  readonly processor: {
    readonly group: string
    /** False when the group has neither committed offsets nor members: the lag is then the whole backlog. */
    readonly seen: boolean
    readonly members: number
    /** Kafka's state of the group (Stable, PreparingRebalance, Empty, …). */
    readonly groupState: string
    /** Every member and the tasks (input partitions) it owns. */
    readonly assignment: readonly GroupMemberTasks[]
    readonly lag: number
    /** The lag in seconds (age of the oldest unprocessed record); null when it could not be read. */
    readonly lagSeconds: GroupLagSeconds | null
    readonly partitions: readonly PartitionLag[]
  }
  readonly sink: {
    readonly group: string
    readonly members: number
    readonly groupState: string
    /** Every member and the chunk-topic partitions it writes. */
    readonly assignment: readonly GroupMemberTasks[]
    readonly lag: number
    readonly lagSeconds: GroupLagSeconds | null
    readonly partitions: readonly PartitionLag[]
  }
  readonly freshness: Freshness | null
  readonly stores: readonly StoreCheckpoint[]
}

export interface TopologyStatus {
  readonly topology: string
  readonly sqlTopology: string
  readonly view: string
  readonly activeVersion: string | null
  readonly versions: readonly VersionStatus[]
  /** The window the freshness percentiles cover, in seconds; null: every row. */
  readonly freshnessWindowSeconds: number | null
  /** Problems reading one of the services; the rest of the report still holds. */
  readonly warnings: readonly string[]
}

export interface StatusOptions {
  readonly app: App
  readonly config: RagstreamConfig
  readonly prefix?: string
  readonly name?: string
  readonly sqlTopology?: string
  /** Only this version; default every version Postgres knows (v1 when it knows none). */
  readonly version?: string
  /**
   * Freshness percentiles over the rows made visible in the last this many seconds; default
   * DEFAULT_FRESHNESS_WINDOW_SECONDS (live freshness), `null` for every row (dominated by the backfill).
   */
  readonly freshnessWindowSeconds?: number | null
}

/** `status`'s default freshness window: the last 5 minutes, as the freshness view's `*_5m` columns. */
export const DEFAULT_FRESHNESS_WINDOW_SECONDS = 300

async function storeCheckpoints(
  admin: Admin,
  redis: Redis,
  d: Deployment,
  partitions: number,
): Promise<StoreCheckpoint[]> {
  const services = deploymentServices(d)
  const compiled = buildTopology(d, services).compile({ partitions })
  void services.close()
  const changelogs = compiled.topics.filter((t) => t.role === 'changelog' && t.store !== undefined)
  const existing = new Set(await admin.listTopics())
  const ends = new Map<string, bigint>()
  const present = changelogs.filter((t) => existing.has(t.name))
  if (present.length > 0) {
    const listed = await admin.listOffsets({
      topics: present.map((t) => ({
        name: t.name,
        partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp: -1n })),
      })),
      isolationLevel: 1,
    })
    for (const t of listed) for (const p of t.partitions) ends.set(`${t.name}:${p.partitionIndex}`, p.offset)
  }
  const out: StoreCheckpoint[] = []
  for (const t of changelogs) {
    for (let partition = 0; partition < partitions; partition++) {
      const stored = await redis.hget(`rs:{${d.applicationId}:${t.store}:${partition}}:state`, 'checkpoint')
      out.push({
        store: t.store!,
        partition,
        checkpoint: stored,
        changelogEnd: ends.get(`${t.name}:${partition}`)?.toString() ?? null,
      })
    }
  }
  return out
}

export async function topologyStatus(o: StatusOptions): Promise<TopologyStatus> {
  const warnings: string[] = []
  const freshnessWindow =
    o.freshnessWindowSeconds === undefined ? DEFAULT_FRESHNESS_WINDOW_SECONDS : o.freshnessWindowSeconds
  const base = deployment({
    app: o.app,
    version: o.version ?? 'v1',
    prefix: o.prefix,
    name: o.name,
    sqlTopology: o.sqlTopology,
    config: o.config,
  })
  const pg = await connectPostgres(o.config.postgres.sinkUrl, 'ragstream-status').catch((error: unknown) => {
    warnings.push(`PostgreSQL (as ${base.sink.names.sinkRole}): ${(error as Error).message}`)
    return undefined
  })
  const admin = new Admin({ clientId: 'ragstream-status', bootstrapBrokers: [...o.config.endpoints.kafkaBrokers] })
  const clock = new LagClock(o.config.endpoints.kafkaBrokers, 'ragstream-status-lag')
  const redis = new Redis(o.config.endpoints.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  try {
    let known: IndexVersion[] = []
    if (pg) {
      known = await listVersions(pg, base.sink).catch((error: unknown) => {
        warnings.push(`PostgreSQL: ${(error as Error).message}`)
        return []
      })
    }
    const activeVersion = known.find((v) => v.active)?.version ?? null
    const wanted = o.version !== undefined ? [o.version] : known.length > 0 ? known.map((v) => v.version) : ['v1']
    const sources = (await import('./deployment.ts')).sourceTopics(base)
    const existing = new Set(await admin.listTopics())
    const present = sources.filter((t) => existing.has(t))
    const metadata = present.length > 0 ? await admin.metadata({ topics: present }) : undefined
    const partitions = Math.max(1, ...present.map((t) => metadata?.topics.get(t)?.partitionsCount ?? 1))
    await redis.connect().catch((error: unknown) => warnings.push(`Redis: ${(error as Error).message}`))

    const versions: VersionStatus[] = []
    for (const version of wanted) {
      const d = deployment({
        app: o.app,
        version,
        prefix: o.prefix,
        name: o.name,
        sqlTopology: o.sqlTopology,
        config: o.config,
      })
      const [processorLag, sinkLag] = await Promise.all([
        consumerLag(admin, d.applicationId, sources),
        consumerLag(admin, d.sink.groupId, [d.chunkTopic]),
      ])
      const [processorGroup, sinkGroup] = await groupStates(admin, [d.applicationId, d.sink.groupId]).catch(
        (error: unknown) => {
          warnings.push(`${version}: consumer groups: ${(error as Error).message}`)
          return [undefined, undefined]
        },
      )
      const lagSeconds = async (group: string, lags: readonly PartitionLag[]): Promise<GroupLagSeconds | null> =>
        clock.read(group, lags).catch((error: unknown) => {
          warnings.push(`${version}: lag in seconds of ${group}: ${(error as Error).message}`)
          return null
        })
      const processorSeconds = await lagSeconds(d.applicationId, processorLag)
      const sinkSeconds = await lagSeconds(d.sink.groupId, sinkLag)
      const processorSeen = processorLag.some((p) => p.committed !== null) || (processorGroup?.members.length ?? 0) > 0
      if (!processorSeen)
        warnings.push(
          `${version}: cannot see the processor's consumer group ${d.applicationId} (no committed offset on ${sources.join(', ') || 'any source'}, no member): its lag above is the whole backlog. Is \`ragstream run\` running this app and version (same name, prefix ${d.prefix ?? '(none)'})?`,
        )
      const registered = known.find((v) => v.version === version)
      let freshness: Freshness | null = null
      if (pg && registered) {
        freshness = await tableFreshness(pg, d.sink.names.chunkTable, freshnessWindow ?? undefined).catch(
          (error: unknown) => {
            warnings.push(`freshness of ${version}: ${(error as Error).message}`)
            return null
          },
        )
      }
      const stores =
        redis.status === 'ready'
          ? await storeCheckpoints(admin, redis, d, partitions).catch(
              (error: unknown) => (warnings.push(`Redis: ${(error as Error).message}`), []),
            )
          : []
      versions.push({
        version,
        active: registered?.active ?? false,
        applicationId: d.applicationId,
        chunkTopic: d.chunkTopic,
        table: d.sink.names.chunkTable,
        processor: {
          group: d.applicationId,
          seen: processorSeen,
          members: processorGroup?.members.length ?? 0,
          groupState: processorGroup?.state ?? 'unknown',
          assignment: processorGroup?.members ?? [],
          lag: totalLag(processorLag),
          lagSeconds: processorSeconds,
          partitions: processorLag,
        },
        sink: {
          group: d.sink.groupId,
          members: sinkGroup?.members.length ?? 0,
          groupState: sinkGroup?.state ?? 'unknown',
          assignment: sinkGroup?.members ?? [],
          lag: totalLag(sinkLag),
          lagSeconds: sinkSeconds,
          partitions: sinkLag,
        },
        freshness,
        stores,
      })
    }
    return {
      topology: base.topology,
      sqlTopology: base.sink.topology,
      view: base.sink.names.view,
      activeVersion,
      versions,
      freshnessWindowSeconds: freshnessWindow,
      warnings,
    }
  } finally {
    await Promise.allSettled([admin.close(), clock.close(), pg?.end()])
    redis.disconnect()
  }
}

/** Seconds as milliseconds (the split's parts are tens of them). */
function millis(n: number): string {
  return `${Math.round(n * 1000)}ms`
}

function secs(n: number | null | undefined): string {
  return n === null || n === undefined ? '–' : `${n.toFixed(2)}s`
}

function lagSeconds(l: GroupLagSeconds | null): string {
  if (l === null) return '–'
  return `oldest unprocessed ${formatSeconds(l.oldestSeconds)}`
}

/** The human rendering: one block per version. */
export function formatStatus(s: TopologyStatus): string {
  const lines = [`${s.topology} (SQL ${s.sqlTopology}): view ${s.view} → ${s.activeVersion ?? 'no active version'}`]
  for (const v of s.versions) {
    lines.push(
      '',
      `${v.version}${v.active ? ' (active)' : ''}  processor ${v.applicationId}  chunk topic ${v.chunkTopic}  table ${v.table}`,
    )
    lines.push(
      `  processor lag ${v.processor.lag}   sink lag ${v.sink.lag}   running: processor ${v.processor.members}, sink ${v.sink.members}${v.processor.seen ? '' : '   PROCESSOR GROUP NOT SEEN (see the warning)'}`,
      `  lag in seconds: processor ${lagSeconds(v.processor.lagSeconds)}   sink ${lagSeconds(v.sink.lagSeconds)}`,
    )
    for (const [who, group] of [
      ['processor', v.processor],
      ['sink', v.sink],
    ] as const) {
      if (group.assignment.length === 0) continue
      lines.push(`  ${who} group ${group.group} (${group.groupState}):`)
      for (const m of group.assignment)
        lines.push(
          `    member ${(m.instanceId ?? m.memberId).padEnd(24)} ${`${m.clientId}@${m.host}`.padEnd(40)} ${who === 'processor' ? 'tasks' : 'partitions'} ${m.tasks.length > 0 ? m.tasks.join(',') : '(none)'}`,
        )
    }
    const rows = [
      ...v.processor.partitions.map((p) => ['processor', p]),
      ...v.sink.partitions.map((p) => ['sink', p]),
    ] as [string, PartitionLag][]
    for (const [who, p] of rows)
      lines.push(
        `    ${who.padEnd(9)} ${`${p.topic}[${p.partition}]`.padEnd(48)} committed ${String(p.committed ?? '–').padStart(8)}  end ${p.end.padStart(8)}  lag ${String(p.lag).padStart(7)}`,
      )
    if (v.freshness) {
      const window =
        s.freshnessWindowSeconds === null
          ? 'all rows'
          : `last ${s.freshnessWindowSeconds}s: ${v.freshness.windowRows} rows`
      lines.push(
        `  freshness (${window})  p50 ${secs(v.freshness.p50)}  p99 ${secs(v.freshness.p99)}  rows ${v.freshness.rows}  last visible ${v.freshness.lastVisibleAt ?? '–'}`,
      )
      const { capture, ragstream, splitRows } = v.freshness
      if (capture !== null && ragstream !== null)
        lines.push(
          `  freshness split (${splitRows} rows)  capture p50 ${millis(capture.p50)}  p99 ${millis(capture.p99)}  ragstream p50 ${millis(ragstream.p50)}  p99 ${millis(ragstream.p99)}`,
        )
    }
    for (const c of v.stores)
      lines.push(
        `    store ${`${c.store}[${c.partition}]`.padEnd(28)} checkpoint ${String(c.checkpoint ?? '–').padStart(8)}  changelog end ${String(c.changelogEnd ?? '–').padStart(8)}`,
      )
  }
  for (const w of s.warnings) lines.push(`WARNING: ${w}`)
  // Member ids, client ids and hosts are whatever a client joining the group said; warnings quote errors.
  return terminalSafe(`${lines.join('\n')}\n`)
}
