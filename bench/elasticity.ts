/**
 * Elasticity benchmark (issue 16): the reference topology (support-copilot: tickets joined with their
 * customers and products, governed, chunked, embedded, written to pgvector) under a constant stream
 * of live changes at about half of what one processor and one sink can do, while its processes are
 * scaled in and out. Every processor and sink is a child process of its own (so a SIGKILL is real),
 * with a stable instance id (static membership). The steps:
 *
 *   steady (1 processor, 1 sink) → processors 1 → 2 → 3 → 2 → same-id restart of one (graceful stop,
 *   start again within the session timeout) → SIGKILL of one (failover after the session timeout) →
 *   the killed one back (1 → 2) → 2 → 1 → sinks 1 → 2 → 1
 *
 * and prints per step:
 *   - settled: from the action to the last new assignment it caused, the assignments and the
 *     generations seen (the same-id restart's goal: one assignment, to the restarted member, in the
 *     generation it had); flowing: from the action to the first commit of the last member assigned
 *     (for a SIGKILL: the failover, until the dead member's tasks are processed again);
 *   - the longest gap between two processor commits (any instance) and between two index commits
 *     (a sink transaction that changed rows), the visible pause of the step;
 *   - freshness p50/p99/max of the rows committed during the step (commit − the change's `ts_ms`);
 *   - records restored from changelogs by the tasks that moved (0 when Redis kept their checkpoints);
 *   - the oracle's lost and duplicated counts for the step (must be 0).
 *
 * The oracle, once the load stops and everything has caught up (see `oracle` below): the final
 * tables replayed from the source records say which tickets must have chunks and with which
 * customer attributes (a missing, extra or stale chunk is a lost change); a committed chunk record
 * equal to the previous record of its key is a duplicate; and every live chunk must be in Postgres
 * with the offset of its last record, and nothing else (sink side). Lost changes are attributed to
 * the step of their ticket's or customer's last change, duplicates to the step they were emitted in.
 *
 * The load: after the backfill, a burst of BENCH_PROBE live changes written at once measures what one
 * processor and one sink can do with the live mix (customer changes re-trigger every ticket of the
 * customer, so one change makes several index rows) into an idle pipeline. That overstates the rate
 * they keep up with, so the sustained rate is measured next: the load held BENCH_SUSTAIN_S seconds
 * at each of rising fixed rates (from BENCH_RAMP_FROM × the burst figure, ×1.25 a level) while the
 * freshness of the rows committed stays flat (see sustainedRate). The load of the steps is half of
 * the sustained rate, unless BENCH_RATE sets it (BENCH_SUSTAIN=1 measures the sustained rate anyway).
 *
 * After the table, a timeline per step (t = 0: the action) lists what each instance did: rebalance
 * noticed, assigned, claims pending (sink), store partitions restored, first batch begun and
 * committed, last commit and stop of a leaver: the pieces a step's pause is made of.
 *
 *   node_modules/.bin/node bench/elasticity.ts              # ~6 minutes
 *   BENCH_STEP_S=30 BENCH_BACKFILL=5000 node_modules/.bin/node bench/elasticity.ts
 *
 * Options (environment): BENCH_PARTITIONS (6), BENCH_BACKFILL tickets (1000), BENCH_STEP_S (12),
 * BENCH_SESSION_MS (6000, the processors' and sinks' session timeout), BENCH_HEARTBEAT_MS (the
 * runtime's default), BENCH_TRANSACTION_MS (the processors' transaction timeout, default the session
 * timeout), BENCH_RATE (changes/s), BENCH_PROBE (1000 changes), BENCH_SUSTAIN_S (20), BENCH_RAMP_FROM
 * (0.2), BENCH_KEEP=1 keeps
 * topics, Redis keys and the table. Embeddings use the built-in hashing embedder (384 dimensions).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { loadavg } from 'node:os'
import { Admin, Producer } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { loadApp } from '../src/app/load.ts'
import { loadConfig } from '../src/config/file.ts'
import { SupportDataset } from '../src/generator/support-dataset.ts'
import { consumerLag, type PartitionLag } from '../src/ops/consumer-lag.ts'
import { buildTopology, compileForBroker, deployment, deploymentServices, sourceTopics } from '../src/ops/deployment.ts'
import type { Deployment } from '../src/ops/deployment.ts'
import { connectPostgres, ensureChunkTopic, prepareDatabase } from '../src/ops/pipeline.ts'
import { KafkaRuntime } from '../src/runtime/kafka-runtime.ts'
import { COMMITTED_FRESHNESS, PgvectorSink } from '../src/sink/pgvector-sink.ts'
import { RedisStateBackend } from '../src/state/redis-store.ts'
import type { StateStore } from '../src/state/store.ts'
import type { ChunkEvent } from '../src/serde/chunk-event.ts'
import type { SourceRecord } from '../src/runtime/task.ts'
import { SUPPORT_REGIONS } from '../topologies/support-copilot.ts'
import { decodeChunkEvents } from '../test/support/rag-services.ts'
import { readToEnd } from '../test/support/topic-offsets.ts'

const env = process.env
const PARTITIONS = Number(env.BENCH_PARTITIONS ?? 6)
const BACKFILL = Number(env.BENCH_BACKFILL ?? 1000)
const STEP_S = Number(env.BENCH_STEP_S ?? 12)
const SESSION_MS = Number(env.BENCH_SESSION_MS ?? 6000)
const HEARTBEAT_MS = env.BENCH_HEARTBEAT_MS === undefined ? undefined : Number(env.BENCH_HEARTBEAT_MS)
const TRANSACTION_MS = Number(env.BENCH_TRANSACTION_MS ?? SESSION_MS)
const PROBE = Number(env.BENCH_PROBE ?? 1000)
const SUSTAIN_S = Number(env.BENCH_SUSTAIN_S ?? 20)
const RAMP_FROM = Number(env.BENCH_RAMP_FROM ?? 0.2)
const KEEP = env.BENCH_KEEP === '1'

interface RunSpec {
  readonly name: string
  readonly prefix: string
  readonly cachePrefix: string
}

async function deploymentOf(spec: RunSpec): Promise<Deployment> {
  return deployment({
    app: await loadApp('support-copilot'),
    version: 'v1',
    name: spec.name,
    prefix: spec.prefix,
    sqlTopology: spec.name.replaceAll('-', '_'),
    cachePrefix: spec.cachePrefix,
    embedding: { kind: 'hashing', dimensions: 384 },
    config: loadConfig(),
  })
}

// ---------------------------------------------------------------- children: one instance each

/** What a child reports, one JSON line each, stamped with its clock (one machine: one clock). */
type ChildEvent =
  | { readonly t: number; readonly e: 'assigned'; readonly gen?: number; readonly tasks: readonly number[] }
  | { readonly t: number; readonly e: 'restored'; readonly records: number }
  | { readonly t: number; readonly e: 'commit'; readonly rows?: number; readonly fresh?: readonly number[] }
  | { readonly t: number; readonly e: 'begin'; readonly records: number }
  | { readonly t: number; readonly e: 'claim-pending'; readonly tasks: readonly number[] }
  | { readonly t: number; readonly e: 'unstable' | 'ready' | 'rebalancing' }
  | { readonly t: number; readonly e: 'stopped' | 'failed'; readonly error?: string }
type Untimed<T> = T extends unknown ? Omit<T, 't'> : never

async function child(role: 'processor' | 'sink', spec: RunSpec, instanceId: string, leave: boolean): Promise<void> {
  const d = await deploymentOf(spec)
  const e = d.config.endpoints
  const say = (event: Untimed<ChildEvent>): void =>
    void process.stdout.write(`${JSON.stringify({ t: Date.now(), ...event })}\n`)
  let stop: () => void
  let done: Promise<unknown>
  let close: () => Promise<unknown> = async () => {}
  if (role === 'processor') {
    const services = deploymentServices(d)
    const topology = await compileForBroker(buildTopology(d, services), e)
    const backend = RedisStateBackend.fromEndpoints(d.applicationId, e)
    const stores = new Map<string, StateStore>(topology.storeNames.map((n) => [n, backend.store(n)]))
    const runtime = new KafkaRuntime(topology, {
      brokers: e.kafkaBrokers,
      stores,
      instanceId,
      leaveGroupOnStop: leave,
      sessionTimeoutMs: SESSION_MS,
      transactionTimeoutMs: TRANSACTION_MS,
      ...(HEARTBEAT_MS === undefined ? {} : { heartbeatIntervalMs: HEARTBEAT_MS }),
      fetchMaxWaitMs: 100,
      onEvent: (event) => {
        if (event.event === 'assigned') say({ e: 'assigned', gen: event.generationId, tasks: event.tasks })
        else if (event.event === 'restored') say({ e: 'restored', records: event.records })
        else if (event.event === 'offsets-unstable') say({ e: 'unstable' })
        else if (event.event === 'rebalancing') say({ e: 'rebalancing' })
      },
      onBatchStage: (stage) => {
        if (stage === 'committed') say({ e: 'commit' })
      },
    })
    say({ e: 'ready' })
    done = runtime.run()
    stop = () => runtime.stop()
    close = () => Promise.allSettled([services.close(), backend.close()])
  } else {
    const sink = new PgvectorSink({
      config: { ...d.sink, instanceId, sessionTimeoutMs: SESSION_MS },
      postgresUrl: d.config.postgres.sinkUrl,
      kafkaBrokers: e.kafkaBrokers,
      schemaRegistryUrl: e.schemaRegistryUrl,
      log: (event) => {
        if (event.event === 'assigned') say({ e: 'assigned', tasks: event.partitions })
        else if (event.event === 'rebalancing') say({ e: 'rebalancing' })
        else if (event.event === 'claim-pending') say({ e: 'claim-pending', tasks: event.partitions })
        else if (event.event === 'batch-begin') say({ e: 'begin', records: event.records })
        else if (event.event === 'batch-committed' && !event.alreadyCommitted)
          say({
            e: 'commit',
            rows: event.upserted + event.deleted,
            fresh: (event[COMMITTED_FRESHNESS] ?? []).flatMap((f) => f.lagsMs),
          })
      },
    })
    say({ e: 'ready' })
    done = sink.run()
    stop = () => sink.stop()
  }
  process.once('SIGTERM', () => stop())
  try {
    await done
    say({ e: 'stopped' })
  } catch (error) {
    say({ e: 'failed', error: (error as Error).message })
  }
  await close()
  process.exit(0)
}

// ---------------------------------------------------------------- parent

interface Instance {
  readonly id: string
  readonly role: 'processor' | 'sink'
  readonly process: ChildProcess
  readonly exited: Promise<void>
}

interface Logged {
  readonly instance: string
  readonly role: 'processor' | 'sink'
  readonly event: ChildEvent
}

class Fleet {
  readonly log: Logged[] = []
  readonly live = new Map<string, Instance>()
  readonly #spec: RunSpec

  constructor(spec: RunSpec) {
    this.#spec = spec
  }

  /** Starts an instance; resolves when it is about to join its group (its process and topology are loaded). */
  start(role: 'processor' | 'sink', id: string, options: { leaveOnStop?: boolean } = {}): Promise<number> {
    if (this.live.has(id)) throw new Error(`${id} already runs`)
    const proc = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      env: {
        ...env,
        BENCH_ROLE: role,
        BENCH_SPEC: JSON.stringify(this.#spec),
        BENCH_INSTANCE: id,
        BENCH_LEAVE: options.leaveOnStop ? '1' : '0',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let ready: (t: number) => void
    const readyAt = new Promise<number>((resolve) => (ready = resolve))
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const event = JSON.parse(line) as ChildEvent
        if (event.e === 'ready') ready(event.t)
        else this.log.push({ instance: id, role, event })
        if (event.e === 'failed') process.stderr.write(`${id} failed: ${event.error ?? 'unknown error'}\n`)
      } catch {
        process.stderr.write(`${id}: ${line}\n`)
      }
    })
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    this.live.set(id, { id, role, process: proc, exited })
    void exited.then(() => {
      if (this.live.get(id)?.process === proc) this.live.delete(id)
    })
    return Promise.race([readyAt, exited.then(() => Promise.reject(new Error(`${id} exited before it was ready`)))])
  }

  async stop(id: string, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const instance = this.live.get(id)
    if (!instance) throw new Error(`${id} does not run`)
    instance.process.kill(signal)
    await instance.exited
  }

  count(role: 'processor' | 'sink'): number {
    return [...this.live.values()].filter((i) => i.role === role).length
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.stop(id)))
  }

  events(from: number, to: number, role?: 'processor' | 'sink'): Logged[] {
    return this.log.filter((l) => l.event.t >= from && l.event.t < to && (role === undefined || l.role === role))
  }
}

/** Writes live changes at a constant rate (changes per second) until stopped. */
class Load {
  sentRecords = 0
  rate: number
  readonly #producer: Producer
  readonly #dataset: SupportDataset
  #running = true
  readonly #done: Promise<void>

  constructor(producer: Producer, dataset: SupportDataset, rate: number) {
    this.#producer = producer
    this.#dataset = dataset
    this.rate = rate
    this.#done = this.#loop()
  }

  async #loop(): Promise<void> {
    let owed = 0
    let last = performance.now()
    while (this.#running) {
      await new Promise((r) => setTimeout(r, 100))
      const now = performance.now()
      owed += ((now - last) / 1000) * this.rate
      last = now
      const messages: { topic: string; key?: Buffer; value?: Buffer }[] = []
      for (; owed >= 1; owed--)
        for (const r of this.#dataset.step())
          messages.push({ topic: r.topic, key: r.key ?? undefined, value: r.value ?? undefined })
      if (messages.length === 0) continue
      await this.#producer.send({ messages })
      this.sentRecords += messages.length
    }
  }

  async stop(): Promise<void> {
    this.#running = false
    await this.#done
  }
}

const drained = (lags: readonly PartitionLag[], slack: number): boolean =>
  lags.some((l) => l.committed !== null) && lags.every((l) => l.lag <= slack)

async function waitCaughtUp(
  admin: Admin,
  d: Deployment,
  sources: readonly string[],
  repartitions: readonly string[],
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs
  let readings = 0
  let since = 0
  while (readings < 2) {
    if (Date.now() > deadline) throw new Error(`not caught up within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 500))
    const [src, rep, chunks] = await Promise.all([
      consumerLag(admin, d.applicationId, sources),
      consumerLag(admin, d.applicationId, repartitions),
      consumerLag(admin, d.sink.groupId, [d.chunkTopic]),
    ])
    // A lag of 1 on a transactional topic is its last commit marker.
    const now = Date.now()
    if (drained(src, 0) && rep.every((l) => l.lag <= 1) && drained(chunks, 1)) {
      if (readings++ === 0) since = now
    } else readings = 0
  }
  return since
}

interface Step {
  readonly name: string
  readonly role: 'processor' | 'sink'
  readonly start: number
  readonly end: number
  /** The instances whose assignment the step is about, and those that should keep theirs. */
  readonly note?: string
}

interface StepResult {
  readonly step: Step
  readonly settledMs: number | undefined
  readonly flowingMs: number | undefined
  readonly unstable: number
  readonly generations: string
  readonly procGapMs: number
  readonly indexGapMs: number
  readonly fresh: readonly number[]
  readonly rows: number
  readonly restored: number
  readonly restoredPartitions: number
  lost: number
  duplicated: number
}

/** The longest time between consecutive commits in [from, to), counting from `from` and to `to`. */
function longestGap(times: readonly number[], from: number, to: number): number {
  const before = times.filter((t) => t < from).at(-1)
  const within = times.filter((t) => t >= from && t < to)
  const points = [before ?? from, ...within, to]
  let gap = 0
  for (let i = 1; i < points.length; i++) gap = Math.max(gap, points[i] - points[i - 1])
  return gap
}

function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

function measure(fleet: Fleet, step: Step): StepResult {
  const events = fleet.events(step.start, step.end)
  const assigned = events.filter((l) => l.event.e === 'assigned' && l.role === step.role)
  const commits = (role: 'processor' | 'sink') =>
    fleet.log
      .filter((l) => l.role === role && l.event.e === 'commit' && (role === 'processor' || (l.event.rows ?? 0) > 0))
      .map((l) => l.event.t)
      .sort((a, b) => a - b)
  const sinkCommits = events.filter((l) => l.role === 'sink' && l.event.e === 'commit')
  const restored = events.filter((l) => l.event.e === 'restored')
  const gens = [
    ...new Set(assigned.map((l) => (l.event.e === 'assigned' && l.event.gen !== undefined ? l.event.gen : '?'))),
  ]
  const last = assigned.at(-1)
  const flowing =
    last === undefined
      ? undefined
      : fleet.log.find((l) => l.instance === last.instance && l.event.e === 'commit' && l.event.t >= last.event.t)
          ?.event.t
  return {
    step,
    flowingMs: flowing === undefined ? undefined : flowing - step.start,
    unstable: events.filter((l) => l.event.e === 'unstable').length,
    settledMs: assigned.length === 0 ? undefined : Math.max(...assigned.map((l) => l.event.t)) - step.start,
    generations:
      step.role === 'processor'
        ? `${assigned.length} assignment${assigned.length === 1 ? '' : 's'}${gens.length > 0 ? ` (gen ${gens.join(',')})` : ''}`
        : `${assigned.length} assignment${assigned.length === 1 ? '' : 's'}`,
    procGapMs: longestGap(commits('processor'), step.start, step.end),
    indexGapMs: longestGap(commits('sink'), step.start, step.end),
    fresh: sinkCommits.flatMap((l) => (l.event.e === 'commit' ? (l.event.fresh ?? []) : [])).sort((a, b) => a - b),
    rows: sinkCommits.reduce((n, l) => n + (l.event.e === 'commit' ? (l.event.rows ?? 0) : 0), 0),
    restored: restored.reduce((n, l) => n + (l.event.e === 'restored' ? l.event.records : 0), 0),
    restoredPartitions: restored.length,
    lost: 0,
    duplicated: 0,
  }
}

/**
 * What happened during a step, per instance, from the action (t = 0): rebalance noticed, assignment,
 * claims still pending (sink), store partitions restored (processor: the span of its `restored`
 * events), the first batch begun and committed after each assignment, the last commit before a stop,
 * the stop. The longest pieces are what a step's pause is made of.
 */
function timeline(fleet: Fleet, step: Step, untilMs: number): string[] {
  const events = fleet.events(step.start - 1, step.start + untilMs)
  const lines: [number, string][] = []
  const at = (t: number, instance: string, what: string): void =>
    void lines.push([t - step.start, `${instance}  ${what}`])
  for (const instance of [...new Set(events.map((l) => l.instance))].sort()) {
    const own = events.filter((l) => l.instance === instance).map((l) => l.event)
    let sinceAssigned: { restored: number[]; begun: boolean; committed: boolean } | undefined
    let lastCommit: number | undefined
    const flushRestores = (): void => {
      const r = sinceAssigned?.restored ?? []
      if (r.length > 0)
        at(r.at(-1)!, instance, `restored ${r.length} store partitions (from +${s(r[0] - step.start)} s)`)
    }
    for (const e of own) {
      if (e.e === 'rebalancing') at(e.t, instance, 'rebalance noticed')
      else if (e.e === 'assigned') {
        flushRestores()
        sinceAssigned = { restored: [], begun: false, committed: false }
        at(e.t, instance, `assigned [${e.tasks.join(',')}]${e.gen === undefined ? '' : ` gen ${e.gen}`}`)
      } else if (e.e === 'claim-pending')
        at(e.t, instance, `claims pending [${e.tasks.join(',')}] (locked by a batch in flight)`)
      else if (e.e === 'restored') sinceAssigned?.restored.push(e.t)
      else if (e.e === 'begin' && sinceAssigned && !sinceAssigned.begun) {
        sinceAssigned.begun = true
        at(e.t, instance, `first batch begun (${e.records} records)`)
      } else if (e.e === 'commit') {
        lastCommit = e.t
        if (sinceAssigned && !sinceAssigned.committed) {
          sinceAssigned.committed = true
          at(e.t, instance, 'first commit after the assignment')
        }
      } else if (e.e === 'stopped' || e.e === 'failed') {
        if (lastCommit !== undefined) at(lastCommit, instance, 'last commit')
        at(e.t, instance, e.e)
      }
    }
    flushRestores()
  }
  return lines.sort((a, b) => a[0] - b[0]).map(([t, what]) => `  ${t >= 0 ? '+' : ''}${s(t)} s  ${what}`)
}

/**
 * The sustained rate: the load held for BENCH_SUSTAIN_S at rising rates (from BENCH_RAMP_FROM of the
 * burst figure, ×1.25 a level); a level is sustained while freshness stays flat, i.e. the p50 of the
 * rows committed in its last third is at most the first third's + max(0.5 s, half of it). The burst
 * into an empty pipeline overstates what the pipeline keeps up with (the HNSW table grows, the
 * backlog's large batches amortise), so the load of the steps is half of this figure.
 */
async function sustainedRate(
  fleet: Fleet,
  producer: Producer,
  dataset: SupportDataset,
  burst: number,
): Promise<{ rate: number; levels: string[] }> {
  const holdMs = SUSTAIN_S * 1000
  const levels: string[] = []
  /** Holds `rate` for holdMs; the p50 freshness of the rows committed in its first and last thirds. */
  const hold = async (rate: number): Promise<{ first?: number; last?: number }> => {
    const load = new Load(producer, dataset, rate)
    const from = Date.now()
    await new Promise((r) => setTimeout(r, holdMs))
    await load.stop()
    const third = holdMs / 3
    const freshIn = (a: number, b: number): number[] =>
      fleet
        .events(from + a, from + b, 'sink')
        .flatMap((l) => (l.event.e === 'commit' ? (l.event.fresh ?? []) : []))
        .sort((x, y) => x - y)
    return { first: percentile(freshIn(0, third), 50), last: percentile(freshIn(2 * third, holdMs), 50) }
  }
  const rising = ({ first, last }: { first?: number; last?: number }): boolean =>
    first === undefined || last === undefined || last > first + Math.max(500, first / 2)
  let sustained = 0
  for (let rate = Math.max(1, Math.round(burst * RAMP_FROM)); rate <= burst * 1.5; rate = Math.round(rate * 1.25) + 1) {
    // A level that looks like falling behind is held once more (a shared machine's hiccup rises
    // once): it falls behind if freshness rises again, or did not come back down meanwhile.
    const one = await hold(rate)
    let behind = rising(one)
    let again: { first?: number; last?: number } | undefined
    if (behind) {
      again = await hold(rate)
      behind = rising(again) || (again.first ?? Infinity) > (one.first ?? 0) + Math.max(500, (one.first ?? 0) / 2)
    }
    const seen = [one, ...(again ? [again] : [])].map((h) => `${s(h.first)} → ${s(h.last)} s`).join(', then ')
    levels.push(
      `${rate} changes/s, ${SUSTAIN_S} s${again ? ' twice' : ''}: fresh p50 first third → last third ${seen}: ${behind ? 'falling behind' : 'flat'}`,
    )
    process.stderr.write(`sustained? ${levels.at(-1)}\n`)
    if (behind) break
    sustained = rate
  }
  return { rate: sustained, levels }
}

/** A Debezium table's final rows after every change of `topic`, by id, with the time of each row's last change. */
function finalRows(
  records: readonly SourceRecord[],
  topic: string,
): Map<string, { row: Record<string, unknown>; at: number } | null> {
  const rows = new Map<string, { row: Record<string, unknown>; at: number } | null>()
  for (const r of records) {
    if (r.topic !== topic || r.value === null || r.key === null) continue
    const change = JSON.parse(r.value.toString()) as { op?: string; after?: Record<string, unknown> | null }
    const id = String((JSON.parse(r.key.toString()) as { id: number }).id)
    rows.set(id, change.op === 'd' || !change.after ? null : { row: change.after, at: Number(r.timestamp) })
  }
  return rows
}

const isAudit = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && 'event_id' in value && 'kind' in value

interface OracleResult {
  /** When the change that was lost happened (the ticket's or its customer's last change). */
  readonly lostAt: number[]
  /** When each duplicate was emitted. */
  readonly duplicatedAt: number[]
  readonly sinkLost: number
  readonly sinkExtra: number
  readonly chunks: number
  readonly chunkRecords: number
  readonly sourceRecords: number
}

/**
 * The final tables replayed from the input (independent of the runtime): every live ticket whose
 * customer exists in a known region has chunks (the policy denies the others), no other ticket has
 * any, and each chunk carries its customer's final classification, tenant, region and subject — a
 * lost change (a ticket deleted, a customer reclassified or moved) shows up as a chunk too many or
 * a stale one. A committed chunk record equal to the previous record of its key (but its emission
 * time) is a duplicate: the chunk-set diff never emits an unchanged chunk twice.
 */
async function oracle(admin: Admin, d: Deployment, sources: readonly string[]): Promise<OracleResult> {
  const input = await readToEnd(admin, PARTITIONS, sources)
  const committed = await readToEnd(admin, PARTITIONS, [d.chunkTopic])
  const previous = new Map<string, string>()
  const duplicatedAt: number[] = []
  const actual = new Map<string, { event: Omit<ChunkEvent, 'embedding'>; offset: bigint } | null>()
  // Decoded a slice at a time, embeddings dropped: a few minutes of load are hundreds of thousands of chunk records.
  for (let from = 0; from < committed.length; from += 2000) {
    const slice = committed.slice(from, from + 2000)
    const decoded = await decodeChunkEvents(slice.map((r) => r.value))
    slice.forEach((r, i) => {
      const full = decoded[i]
      if (isAudit(full)) return
      const key = r.key!.toString()
      let event: Omit<ChunkEvent, 'embedding'> | null = null
      let seen = 'tombstone'
      if (full !== null) {
        const { embedding, ...rest } = full
        event = rest
        const { emitted_at_ms: _emitted, ...lineage } = rest.lineage
        seen = JSON.stringify({
          ...rest,
          lineage,
          embedding: Buffer.from(Float32Array.from(embedding).buffer).toString('base64'),
        })
      }
      if (previous.get(key) === seen) duplicatedAt.push(event?.lineage.emitted_at_ms ?? Number(r.timestamp))
      previous.set(key, seen)
      actual.set(key, event === null ? null : { event, offset: r.offset })
    })
  }
  const tickets = finalRows(input, `${d.prefix}.public.tickets`)
  const customers = finalRows(input, `${d.prefix}.public.customers`)
  const customerOf = (ticket: string) => customers.get(String(tickets.get(ticket)?.row.customer_id)) ?? null
  const lastChange = (ticket: string) => Math.max(tickets.get(ticket)?.at ?? 0, customerOf(ticket)?.at ?? 0)
  const governed = new Set(
    [...tickets.keys()].filter(
      (id) => tickets.get(id) && (SUPPORT_REGIONS as readonly unknown[]).includes(customerOf(id)?.row.region),
    ),
  )
  const live = [...actual].filter(([, v]) => v !== null) as [
    string,
    { event: Omit<ChunkEvent, 'embedding'>; offset: bigint },
  ][]
  const chunked = new Set(live.map(([, v]) => v.event.entity_key))
  const lostAt: number[] = []
  for (const ticket of governed) if (!chunked.has(ticket)) lostAt.push(lastChange(ticket))
  for (const [, { event }] of live) {
    const ticket = event.entity_key
    const customer = customerOf(ticket)?.row
    const stale =
      !governed.has(ticket) ||
      JSON.stringify([event.classification, event.tenant, event.region, event.subjects]) !==
        JSON.stringify([
          customer?.classification,
          customer?.tenant,
          customer?.region,
          [`customer:${String(tickets.get(ticket)?.row.customer_id)}`],
        ])
    if (stale) lostAt.push(lastChange(ticket))
  }
  // Sink side: every live chunk is in Postgres with its last record's offset, nothing else is.
  const pg = await connectPostgres(d.config.postgres.adminUrl, 'bench-elasticity-oracle')
  const rows = await pg
    .query<{ chunk_id: string; chunk_offset: string }>(`SELECT chunk_id, chunk_offset FROM ${d.sink.names.chunkTable}`)
    .finally(() => pg.end().catch(() => {}))
  const inTable = new Map(rows.rows.map((r) => [r.chunk_id, BigInt(r.chunk_offset)]))
  return {
    lostAt,
    duplicatedAt,
    sinkLost: live.filter(([k, v]) => inTable.get(k) !== v.offset).length,
    sinkExtra: [...inTable.keys()].filter((k) => !actual.get(k)).length,
    chunks: live.length,
    chunkRecords: committed.length,
    sourceRecords: input.length,
  }
}

const s = (ms: number | undefined): string => (ms === undefined ? '-' : (ms / 1000).toFixed(2))

function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('  ')
  return [line(header), ...rows.map(line)]
}

async function main(): Promise<void> {
  const role = env.BENCH_ROLE
  if (role === 'processor' || role === 'sink')
    return child(role, JSON.parse(env.BENCH_SPEC!) as RunSpec, env.BENCH_INSTANCE!, env.BENCH_LEAVE === '1')

  // deploymentServices unrefs its Redis socket: keep the process alive while the oracle awaits it.
  const keepAlive = setInterval(() => {}, 1000)
  const id = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`
  const spec: RunSpec = { name: `bench-el-${id}`, prefix: `bench-el-${id}`, cachePrefix: `rs:bench-el-${id}` }
  const d = await deploymentOf(spec)
  const e = d.config.endpoints
  const admin = new Admin({ clientId: `${spec.name}-admin`, bootstrapBrokers: [...e.kafkaBrokers] })
  const sources = sourceTopics(d)
  const fleet = new Fleet(spec)
  const producer = new Producer({
    clientId: `${spec.name}-gen`,
    bootstrapBrokers: [...e.kafkaBrokers],
    idempotent: true,
  })
  const dataset = new SupportDataset({ seed: 16, server: spec.prefix, withSchema: false, malformedRate: 0 })
  const load0 = loadavg()

  let load: Load | undefined
  try {
    process.stderr.write(`run ${spec.name}: creating ${sources.length} source topics, ${PARTITIONS} partitions…\n`)
    await admin.createTopics({
      topics: sources,
      partitions: PARTITIONS,
      replicas: 1,
      configs: [{ name: 'cleanup.policy', value: 'compact' }],
    })
    process.stderr.write(`writing the backfill…\n`)
    let backfillRecords = 0
    let pending: { topic: string; key?: Buffer; value?: Buffer }[] = []
    for (const r of dataset.backfill(BACKFILL)) {
      pending.push({ topic: r.topic, key: r.key ?? undefined, value: r.value ?? undefined })
      if (pending.length >= 2000) {
        await producer.send({ messages: pending })
        backfillRecords += pending.length
        pending = []
      }
    }
    if (pending.length > 0) await producer.send({ messages: pending })
    backfillRecords += pending.length
    process.stderr.write(`preparing the table and the chunk topic…\n`)
    await prepareDatabase(d)
    await ensureChunkTopic(d, sources)
    const repartitions = (await compileForBroker(buildTopology(d, deploymentServices(d)), e)).topics
      .filter((t) => t.role === 'repartition')
      .map((t) => t.name)

    // Capacity of one processor and one sink for the live mix (edits, deletes, customer changes that
    // re-trigger their tickets): a burst of PROBE changes written at once, from its first record to
    // caught up. The load is then half of that.
    process.stderr.write(`backfill: ${BACKFILL} tickets (${backfillRecords} records), 1 processor + 1 sink…\n`)
    await Promise.all([fleet.start('processor', 'proc-1'), fleet.start('sink', 'sink-1')])
    await waitCaughtUp(admin, d, sources, repartitions, 600_000)
    const probeFrom = Date.now()
    const burst: { topic: string; key?: Buffer; value?: Buffer }[] = []
    for (let i = 0; i < PROBE; i++)
      for (const r of dataset.step())
        burst.push({ topic: r.topic, key: r.key ?? undefined, value: r.value ?? undefined })
    await producer.send({ messages: burst })
    const probeTo = await waitCaughtUp(admin, d, sources, repartitions, 600_000)
    const capacity = PROBE / ((probeTo - probeFrom) / 1000)
    const probeRows = fleet
      .events(probeFrom, Date.now(), 'sink')
      .reduce((n, l) => n + (l.event.e === 'commit' ? (l.event.rows ?? 0) : 0), 0)
    process.stderr.write(
      `burst capacity: ${capacity.toFixed(1)} changes/s (${PROBE} changes, ${burst.length} records, ${probeRows} index rows in ${((probeTo - probeFrom) / 1000).toFixed(1)} s)\n`,
    )
    const sustained =
      env.BENCH_RATE !== undefined && env.BENCH_SUSTAIN !== '1'
        ? undefined
        : await sustainedRate(fleet, producer, dataset, capacity)
    if (sustained) await waitCaughtUp(admin, d, sources, repartitions, 600_000)
    const rate =
      env.BENCH_RATE !== undefined ? Number(env.BENCH_RATE) : Math.max(1, Math.round((sustained?.rate ?? 2) / 2))
    process.stderr.write(`load ${rate} changes/s\n`)
    load = new Load(producer, dataset, rate)
    await new Promise((r) => setTimeout(r, 5000))

    const steps: Step[] = []
    const step = async (
      name: string,
      stepRole: 'processor' | 'sink',
      action: () => Promise<number | void>,
      seconds = STEP_S,
    ) => {
      process.stderr.write(`step: ${name}\n`)
      const before = Date.now()
      // A new instance's step starts when it is loaded and joins: process start-up is not the rebalance.
      const start = (await action()) ?? before
      await new Promise((r) => setTimeout(r, Math.max(0, start + seconds * 1000 - Date.now())))
      steps.push({ name, role: stepRole, start, end: Date.now() })
    }
    await step('steady: 1 processor, 1 sink', 'processor', async () => {})
    await step('processors 1 → 2', 'processor', async () => fleet.start('processor', 'proc-2'))
    await step('processors 2 → 3', 'processor', async () => fleet.start('processor', 'proc-3', { leaveOnStop: true }))
    await step('processors 3 → 2 (leaves)', 'processor', () => fleet.stop('proc-3'))
    // From the stop: a restart's pause includes the new process's start-up.
    await step('same-id restart of proc-2', 'processor', async () => {
      await fleet.stop('proc-2')
      await fleet.start('processor', 'proc-2')
      return undefined
    })
    // A killed instance's open transaction holds its offsets until the coordinator aborts it: up to the
    // transaction timeout after it began, plus the broker's abort interval (5 s on the local stack).
    const failoverS = Math.max(STEP_S, (SESSION_MS + TRANSACTION_MS) / 1000 + 8)
    await step('SIGKILL proc-2 (2 → 1)', 'processor', () => fleet.stop('proc-2', 'SIGKILL'), failoverS)
    await step('proc-2 back (1 → 2)', 'processor', async () =>
      fleet.start('processor', 'proc-2', { leaveOnStop: true }),
    )
    await step('processors 2 → 1 (leaves)', 'processor', () => fleet.stop('proc-2'))
    await step('sinks 1 → 2', 'sink', async () => fleet.start('sink', 'sink-2'))
    await step('sinks 2 → 1', 'sink', () => fleet.stop('sink-2'))

    await load.stop()
    load = undefined
    process.stderr.write('load stopped; waiting for the pipeline to catch up, then the oracle…\n')
    await waitCaughtUp(admin, d, sources, repartitions, 300_000)
    await fleet.stopAll()
    const load1 = loadavg()
    const results = steps.map((st) => measure(fleet, st))
    process.stderr.write('oracle: reading the sources and the chunk topic…\n')
    const verdict = await oracle(admin, d, sources)
    const stepOf = (t: number) => results.find((r) => t >= r.step.start && t < r.step.end)
    let lostOutside = 0
    let dupOutside = 0
    for (const t of verdict.lostAt) {
      const r = stepOf(t)
      if (r) r.lost++
      else lostOutside++
    }
    for (const t of verdict.duplicatedAt) {
      const r = stepOf(t)
      if (r) r.duplicated++
      else dupOutside++
    }

    const lines: string[] = []
    lines.push(
      `support-copilot under load: ${PARTITIONS} partitions, ${BACKFILL} tickets backfilled, ${rate} changes/s ` +
        (sustained
          ? `(half of the ${sustained.rate} changes/s one processor and one sink sustained; burst ${capacity.toFixed(1)} changes/s), `
          : `(set by BENCH_RATE; burst capacity ${capacity.toFixed(1)} changes/s), `) +
        `session timeout ${SESSION_MS} ms, transaction timeout ${TRANSACTION_MS} ms, heartbeat ${HEARTBEAT_MS ?? Math.max(100, Math.floor(SESSION_MS / 10))} ms, hashing embedder 384-d`,
    )
    lines.push(
      `machine load average ${load0.map((x) => x.toFixed(1)).join(' ')} at the start, ${load1.map((x) => x.toFixed(1)).join(' ')} at the end`,
    )
    if (sustained) lines.push('sustained rate (fixed-rate levels):', ...sustained.levels.map((l) => `  ${l}`))
    lines.push('')
    lines.push(
      ...table(
        [
          'step',
          'settled s',
          'flowing s',
          'assignments',
          'unstable',
          'proc gap s',
          'index gap s',
          'fresh p50',
          'p99',
          'max',
          'rows/s',
          'restored',
          'lost',
          'dup',
        ],
        results.map((r) => [
          r.step.name,
          s(r.settledMs),
          s(r.flowingMs),
          r.generations,
          String(r.unstable),
          s(r.procGapMs),
          s(r.indexGapMs),
          s(percentile(r.fresh, 50)),
          s(percentile(r.fresh, 99)),
          s(r.fresh.at(-1)),
          (r.rows / ((r.step.end - r.step.start) / 1000)).toFixed(0),
          `${r.restored} (${r.restoredPartitions} store partitions)`,
          String(r.lost),
          String(r.duplicated),
        ]),
      ),
    )
    lines.push('')
    lines.push(
      `oracle: ${verdict.sourceRecords} source records, ${verdict.chunkRecords} chunk-topic records, ${verdict.chunks} live chunks; ` +
        `lost ${verdict.lostAt.length} (${lostOutside} outside the steps), duplicated ${verdict.duplicatedAt.length} (${dupOutside} outside the steps); ` +
        `sink: ${verdict.sinkLost} live chunks missing or stale in Postgres, ${verdict.sinkExtra} rows that should not be there`,
    )
    lines.push(
      'settled: action → the last new assignment it caused; flowing: → the first commit of the member assigned last; unstable: waits for a dead transaction holding offsets; gaps: longest time without a processor commit / an index commit that changed rows;',
    )
    lines.push(
      'fresh: commit − source change (ts_ms) of the rows written in the step; restored: changelog records replayed by moved tasks',
    )
    for (const r of results.slice(1)) {
      lines.push('', `timeline: ${r.step.name} (t = 0: the action)`)
      lines.push(...timeline(fleet, r.step, Math.min(r.step.end - r.step.start, (r.flowingMs ?? 0) + 3000)))
    }
    process.stdout.write(`${lines.join('\n')}\n`)
  } finally {
    await load?.stop().catch(() => {})
    await fleet.stopAll().catch(() => {})
    await producer.close().catch(() => {})
    if (!KEEP)
      await cleanup(admin, d, spec, sources).catch((error: unknown) =>
        process.stderr.write(`cleanup: ${String(error)}\n`),
      )
    await admin.close()
    clearInterval(keepAlive)
  }
}

async function cleanup(admin: Admin, d: Deployment, spec: RunSpec, sources: readonly string[]): Promise<void> {
  const redis = new Redis(d.config.endpoints.redisUrl)
  try {
    for (const pattern of [`rs:{${d.applicationId}:*`, `${spec.cachePrefix}*`]) {
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
        cursor = next
        if (keys.length > 0) await redis.unlink(...keys)
      } while (cursor !== '0')
    }
  } finally {
    redis.disconnect()
  }
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${d.applicationId}-`))
  await admin.deleteTopics({ topics: [...sources, d.chunkTopic, ...topics] }).catch(() => {})
  await admin.deleteGroups({ groups: [d.applicationId, d.sink.groupId] }).catch(() => {})
  const owner = await connectPostgres(d.config.postgres.ownerUrl, 'bench-elasticity')
  await owner.query(`DROP TABLE IF EXISTS ${d.sink.names.chunkTable} CASCADE`).catch(() => {})
  await owner.end()
}

await main()
