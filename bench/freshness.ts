/**
 * Freshness benchmark (issue 18): the support-copilot reference topology on the local stack, both sides
 * exactly once (the processor's Kafka transactions, the sink's Postgres transaction with its offsets).
 * A producer writes Debezium changes at fixed rates into the source topics, created with
 * `message.timestamp.type=LogAppendTime`: each record's timestamp is the broker's append, so a row's
 * `source_appended_at` is exactly when its change reached its source topic, and append → visible
 * (`ragstream_append_to_visible_seconds`: the sink's COMMIT returning minus that append) is ragstream's
 * part, the figure the goals are set for. Each change's ts_ms is the moment it is sent, so event →
 * visible (`ragstream_event_to_visible_seconds`) adds the produce round trip (the `sent` column; its
 * difference to append → visible is this bench's "capture").
 *
 * Three processes, so CPU is per process: this one (orchestration, the pgvector sink), a processor
 * child (KafkaRuntime, Redis stores) and a producer child. Loads, each for direct updates (a ticket's
 * body changes: one row) and re-triggers (a customer's tier changes: its tickets' rows, measured from
 * the customer's change):
 *   idle  — one change at a time, the next after the previous was visible and a pause;
 *   50/s  — changes at a fixed 50 per second;
 *   half  — half of the capacity the backfill measured (processor + sink, tickets/s), in rows.
 * Per load and kind: p50/p95/p99/max, where the time went (processor: batch processing and
 * transaction; sink: write and commit; the rest is waiting and fetching), transactions per change,
 * CPU ms per change of the processor and the sink (this process: the sink, and the bench's own sends,
 * which wait for events rather than poll), and socket writes per change by service (Kafka, Redis,
 * Postgres): on this VM each costs ~0.3-1 ms of CPU, so they are most of a lone change's CPU.
 *
 *   node bench/freshness.ts                         # BENCH_CUSTOMERS=100 BENCH_TICKETS_PER_CUSTOMER=5
 *
 * Options (environment): BENCH_SECONDS (per load, default 8), BENCH_IDLE_PROBES (default 15),
 * BENCH_IDLE_SECONDS (the processor with no input, default 5), BENCH_WARMUP_SECONDS (changes at 50 rows/s, half of
 * them direct, before the measured loads, not measured; default 20, 0 = none), BENCH_PARTITIONS (default 2), BENCH_LOADS=idle,50,half, BENCH_KINDS=direct,re-trigger, BENCH_HALF_RATE (rows/s; default measured),
 * BENCH_COMMIT_INTERVAL_MS and BENCH_MAX_CHAINED_ROUNDS (the processor's commitIntervalMs and
 * maxChainedRounds; 0 turns the commit cadence or hop chaining off), BENCH_BATCH_LINGER_MS (batchLingerMs; 0 = off), BENCH_PROFILE=<dir> (V8 CPU
 * profiles of the processor child and of this process, the sink, during the loads, written into <dir>;
 * BENCH_PROFILE_INTERVAL_US sets their sampling interval), BENCH_SINK_DECODE=1 (the sink's CPU per
 * record in its Avro decode, backfill included).
 * The machine is shared: the closing lines print its load average; compare within one run.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { subscribe } from 'node:diagnostics_channel'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { Socket } from 'node:net'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Admin, Producer } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { loadApp } from '../src/app/load.ts'
import { loadConfig } from '../src/config/file.ts'
import { buildTopology, compileForBroker, deployment, deploymentServices, sourceTopics } from '../src/ops/deployment.ts'
import { connectPostgres, ensureChunkTopic, prepareDatabase } from '../src/ops/pipeline.ts'
import { KafkaRuntime } from '../src/runtime/kafka-runtime.ts'
import { COMMITTED_FRESHNESS, PgvectorSink, type SinkLogEvent } from '../src/sink/pgvector-sink.ts'
import { ChunkDecoder } from '../src/sink/chunk-codec.ts'
import { RedisStateBackend } from '../src/state/redis-store.ts'
import type { StateStore } from '../src/state/store.ts'
import { customerRow, ticketRow } from './_support-rows.ts'

const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 100)
const PER_CUSTOMER = Number(process.env.BENCH_TICKETS_PER_CUSTOMER ?? 5)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
const IDLE_PROBES = Number(process.env.BENCH_IDLE_PROBES ?? 15)
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 5)
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 2)
// Before the measured loads, changes at 50/s (both kinds) for this long, not measured: the first
// seconds of a load pay V8 compiling the small-batch paths (in one run the first 50/s load cost 7.1 ms
// per change, the next two 5.3 and 4.7; after a 10 s warm-up still 6.2, then 4.6-5.2), and a pipeline
// runs for days, not seconds. 0 = none.
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 20)
const LOADS = [...(WARMUP_SECONDS > 0 ? ['warm'] : []), ...(process.env.BENCH_LOADS ?? 'idle,50,half').split(',')]
const KINDS = (process.env.BENCH_KINDS ?? 'direct,re-trigger').split(',')
const RUN = process.env.BENCH_RUN ?? randomUUID().slice(0, 8)
const NAME = `bench-fresh-${RUN}`
const PREFIX = `${NAME}.src`
const TOPICS = {
  tickets: `${PREFIX}.public.tickets`,
  customers: `${PREFIX}.public.customers`,
  products: `${PREFIX}.products`,
}
const config = loadConfig({ env: process.env })
const brokers = [...config.endpoints.kafkaBrokers]

/** Debezium JSON (schemaless) of a row change, committed at its source at `tsMs`. */
function envelope(table: string, row: Record<string, unknown>, tsMs: number) {
  return {
    key: Buffer.from(JSON.stringify({ id: row.id })),
    value: Buffer.from(
      JSON.stringify({
        before: null,
        after: row,
        source: { ts_ms: tsMs, schema: 'public', table },
        op: 'u',
        ts_ms: tsMs,
      }),
    ),
  }
}

/** BENCH_SINK_DECODE=1: the sink's CPU in ChunkDecoder.decode (Avro of a chunk event, checks, the row), per record. */
const sinkParts = { decodeUs: 0, decodes: 0 }
if (process.env.BENCH_SINK_DECODE) {
  const decode = ChunkDecoder.prototype.decode
  ChunkDecoder.prototype.decode = function (this: ChunkDecoder, r: Parameters<ChunkDecoder['decode']>[0]) {
    const u = process.cpuUsage()
    try {
      return decode.call(this, r)
    } finally {
      const d = process.cpuUsage(u)
      sinkParts.decodeUs += d.user + d.system
      sinkParts.decodes++
    }
  }
}
function cpuMs(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/**
 * Socket writes (≈ send syscalls: a corked stream's writes count once) per service, by remote port:
 * what a change costs in round trips to Kafka, Redis and Postgres.
 */
const socketWrites: Record<string, number> = {}
function countSocketWrites(): void {
  const ports = new Map<number, string>()
  for (const b of brokers) ports.set(Number(b.split(':').pop()), 'kafka')
  ports.set(Number(new URL(config.endpoints.redisUrl).port || 6379), 'redis')
  ports.set(Number(new URL(config.postgres.sinkUrl).port || 5432), 'pg')
  const proto = Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown }
  const write = proto._writeGeneric
  proto._writeGeneric = function (this: Socket, ...args: unknown[]) {
    const service = ports.get(this.remotePort ?? 0) ?? 'other'
    socketWrites[service] = (socketWrites[service] ?? 0) + 1
    return write.apply(this, args)
  }
}

/** Kafka requests this process sent, by API (the client's diagnostics channel sees every request). */
const kafkaRequests: Record<string, number> = {}
const KAFKA_APIS: Record<number, string> = {
  0: 'Produce',
  1: 'Fetch',
  2: 'ListOffsets',
  3: 'Metadata',
  8: 'OffsetCommit',
  9: 'OffsetFetch',
  10: 'FindCoordinator',
  12: 'Heartbeat',
  21: 'DeleteRecords',
  22: 'InitProducerId',
  24: 'AddPartitionsToTxn',
  25: 'AddOffsetsToTxn',
  26: 'EndTxn',
  28: 'TxnOffsetCommit',
}
function countKafkaRequests(): void {
  subscribe('tracing:plt:kafka:connections:api:start', (message) => {
    const apiKey = (message as { apiKey: number }).apiKey
    const name = KAFKA_APIS[apiKey] ?? `api${apiKey}`
    kafkaRequests[name] = (kafkaRequests[name] ?? 0) + 1
  })
}

/**
 * Starts a V8 CPU profile of this process; the function returned stops it and writes
 * `<BENCH_PROFILE>/<name>-<run>.cpuprofile`. BENCH_PROFILE_INTERVAL_US sets the sampling interval
 * (V8's default, 1000 µs, sees little of a 1 ms `process()`).
 */
async function startProfile(name: string): Promise<() => Promise<void>> {
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  if (process.env.BENCH_PROFILE_INTERVAL_US)
    await session.post('Profiler.setSamplingInterval', { interval: Number(process.env.BENCH_PROFILE_INTERVAL_US) })
  await session.post('Profiler.start')
  return async () => {
    const { profile } = await session.post('Profiler.stop')
    const file = join(process.env.BENCH_PROFILE!, `${name}-${RUN}.cpuprofile`)
    writeFileSync(file, JSON.stringify(profile))
    process.stderr.write(`${name} profile: ${file}\n`)
    session.disconnect()
  }
}

// ---- children ----------------------------------------------------------------------------------

/** The processor: the deployment's topology on the Kafka runtime, exactly once, Redis stores. */
async function processorChild(): Promise<void> {
  const d = benchDeployment(await loadApp('support-copilot'))
  const services = deploymentServices(d)
  const topology = await compileForBroker(buildTopology(d, services), config.endpoints)
  const backend = RedisStateBackend.fromEndpoints(d.applicationId, config.endpoints)
  const stores = new Map<string, StateStore>(topology.storeNames.map((n) => [n, backend.store(n)]))
  countSocketWrites()
  countKafkaRequests()
  // processCpuMs: this process's CPU while the topology processed (decode, join, govern, chunk, embed, encode).
  const stats = { batches: 0, processMs: 0, processCpuMs: 0, transactionMs: 0 }
  let producedAt = 0
  const timed = {
    ...topology,
    async process(...args: Parameters<typeof topology.process>) {
      const begun = performance.now()
      const cpu = cpuMs()
      try {
        return await topology.process(...args)
      } finally {
        stats.processMs += performance.now() - begun
        stats.processCpuMs += cpuMs() - cpu
      }
    },
  }
  const runtime = new KafkaRuntime(timed, {
    brokers,
    stores,
    instanceId: 'bench',
    sessionTimeoutMs: 6000,
    // The runtime's transaction sharing, to compare within one machine state (defaults when unset).
    ...(process.env.BENCH_COMMIT_INTERVAL_MS ? { commitIntervalMs: Number(process.env.BENCH_COMMIT_INTERVAL_MS) } : {}),
    ...(process.env.BENCH_MAX_CHAINED_ROUNDS ? { maxChainedRounds: Number(process.env.BENCH_MAX_CHAINED_ROUNDS) } : {}),
    ...(process.env.BENCH_BATCH_LINGER_MS ? { batchLingerMs: Number(process.env.BENCH_BATCH_LINGER_MS) } : {}),
    onBatchStage: (stage) => {
      if (stage === 'produced') producedAt = performance.now()
      if (stage === 'committed') {
        stats.batches++
        stats.transactionMs += performance.now() - producedAt
      }
    },
  })
  // BENCH_PROFILE=<dir>: a V8 CPU profile of the measured loads (not the backfill), written on 'profile-stop'.
  let profiling: (() => Promise<void>) | undefined
  process.on('message', async (m: { ask?: string }) => {
    if (m.ask === 'profile-start') profiling = await startProfile('processor')
    if (m.ask === 'profile-stop') await profiling?.()
    if (m.ask === 'stats')
      process.send!({ cpuMs: cpuMs(), writes: { ...socketWrites }, requests: { ...kafkaRequests }, ...stats })
    if (m.ask === 'stop') runtime.stop()
  })
  await runtime.run()
  await services.close()
  process.exit(0)
}

/** The producer: sends what the parent asks for, stamping each change with the moment it is sent. */
async function producerChild(): Promise<void> {
  const producer = new Producer({ clientId: `${NAME}-producer`, bootstrapBrokers: brokers })
  process.on('message', (m: { kind: 'ticket' | 'customer'; id: number; version: number } | { ask: string }) => {
    if ('ask' in m) {
      if (m.ask === 'stop') void producer.close().then(() => process.exit(0))
      return
    }
    const now = Date.now()
    const change =
      m.kind === 'ticket'
        ? { topic: TOPICS.tickets, ...envelope('tickets', ticketRow(m.id, m.version, CUSTOMERS), now) }
        : { topic: TOPICS.customers, ...envelope('customers', customerRow(m.id, `tier-${m.version}`), now) }
    producer.send({ messages: [change] }).catch((error: unknown) => process.send!({ error: String(error) }))
  })
  process.send!({ ready: true })
}

function benchDeployment(app: Awaited<ReturnType<typeof loadApp>>) {
  return deployment({
    app,
    version: 'v1',
    prefix: PREFIX,
    name: NAME,
    sqlTopology: `bench_fresh_${RUN}`,
    cachePrefix: `${NAME}-emb`,
    config,
  })
}

// ---- the run -----------------------------------------------------------------------------------

const pct = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
const ask = <T>(child: ChildProcess, what: string): Promise<T> =>
  new Promise((resolve) => {
    const on = (m: unknown) => {
      if (m !== null && typeof m === 'object' && 'cpuMs' in m) {
        child.off('message', on)
        resolve(m as T)
      }
    }
    child.on('message', on)
    child.send({ ask: what })
  })
/** Socket writes per change, per service. */
const writesPer = (
  before: Record<string, number>,
  after: Record<string, number>,
  changes: number,
  services = ['kafka', 'redis'],
) =>
  services
    .map((s) => `${s} ${changes === 0 ? 0 : (((after[s] ?? 0) - (before[s] ?? 0)) / changes).toFixed(1)}`)
    .join(' ')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
interface ProcessorStats {
  readonly cpuMs: number
  readonly writes: Record<string, number>
  readonly requests: Record<string, number>
  readonly batches: number
  readonly processMs: number
  readonly processCpuMs: number
  readonly transactionMs: number
}
/** Kafka requests per change (or per second), by API, the most frequent first; `per` divides the difference. */
const requestsPer = (before: Record<string, number>, after: Record<string, number>, per: number) =>
  Object.keys(after)
    .map((api) => [api, (after[api] - (before[api] ?? 0)) / per] as const)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([api, n]) => `${api} ${n.toFixed(n < 1 ? 2 : 1)}`)
    .join(', ')

async function main(): Promise<void> {
  const self = fileURLToPath(import.meta.url)
  const admin = new Admin({ clientId: `${NAME}-admin`, bootstrapBrokers: brokers })
  await admin.createTopics({
    topics: Object.values(TOPICS),
    partitions: PARTITIONS,
    replicas: 1,
    configs: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }],
  })
  const d = benchDeployment(await loadApp('support-copilot'))
  await prepareDatabase(d)
  await ensureChunkTopic(d, sourceTopics(d))

  // Backfill: every customer, then its tickets, ten minutes old.
  const seed = new Producer({ clientId: `${NAME}-seed`, bootstrapBrokers: brokers })
  const old = Date.now() - 600_000
  const tickets = CUSTOMERS * PER_CUSTOMER
  await seed.send({
    messages: Array.from({ length: CUSTOMERS }, (_, id) => ({
      topic: TOPICS.customers,
      ...envelope('customers', customerRow(id, 'tier-0'), old),
    })),
  })
  for (let from = 0; from < tickets; from += 500)
    await seed.send({
      messages: Array.from({ length: Math.min(500, tickets - from) }, (_, i) => ({
        topic: TOPICS.tickets,
        ...envelope('tickets', ticketRow(from + i, 0, CUSTOMERS), old),
      })),
    })
  await seed.close()

  // Sink here; processor and producer in children.
  const lags: number[] = []
  const sentLags: number[] = []
  // Waits for `n` measured rows without polling (this process's CPU is the sink's figure).
  let waiter: { n: number; resolve: () => void } | undefined
  const rowsSeen = (n: number, timeoutMs: number) =>
    new Promise<void>((resolve) => {
      if (lags.length >= n) return resolve()
      const timer = setTimeout(() => {
        waiter = undefined
        resolve()
      }, timeoutMs)
      waiter = {
        n,
        resolve: () => {
          clearTimeout(timer)
          waiter = undefined
          resolve()
        },
      }
    })
  let sinkBegin = 0
  const sinkStats = { batches: 0, writeMs: 0, rows: 0 }
  const sink = new PgvectorSink({
    config: d.sink,
    postgresUrl: config.postgres.sinkUrl,
    kafkaBrokers: brokers,
    schemaRegistryUrl: config.endpoints.schemaRegistryUrl,
    log: (e: SinkLogEvent) => {
      if (e.event === 'batch-begin') sinkBegin = performance.now()
      if (e.event !== 'batch-committed' || e.upserted === 0) return
      sinkStats.batches++
      sinkStats.writeMs += performance.now() - sinkBegin
      for (const f of e[COMMITTED_FRESHNESS] ?? []) {
        for (const ms of f.appendLagsMs) lags.push(ms)
        for (const ms of f.lagsMs) sentLags.push(ms)
      }
      if (waiter && lags.length >= waiter.n) waiter.resolve()
      sinkStats.rows += e.upserted
    },
  })
  countSocketWrites()
  const sinkDone = sink.run()
  const started = Date.now()
  const env = { ...process.env, BENCH_RUN: RUN }
  const processor = fork(self, ['processor'], { stdio: 'inherit', env })
  const producer = fork(self, ['producer'], { stdio: 'inherit', env })
  processor.once('exit', (code) => {
    if (code !== 0) {
      process.stderr.write(`the processor stopped (exit ${code})\n`)
      process.exit(1)
    }
  })
  await new Promise<void>((resolve) => producer.once('message', () => resolve()))
  const reader = await connectPostgres(config.postgres.sinkUrl, `${NAME}-reader`)
  const rows = async () =>
    Number((await reader.query(`SELECT count(*) AS n FROM ${d.sink.names.chunkTable}`)).rows[0].n)
  while ((await rows()) < tickets) await sleep(200)
  const capacity = tickets / ((Date.now() - started) / 1000)
  const halfRate = Number(process.env.BENCH_HALF_RATE ?? Math.max(1, Math.floor(capacity / 2)))
  process.stdout.write(
    `backfill: ${CUSTOMERS} customers, ${tickets} tickets (${PARTITIONS} partitions) indexed in ${((Date.now() - started) / 1000).toFixed(1)} s: ~${capacity.toFixed(0)} tickets/s end to end (start-up included); half load = ${halfRate} rows/s\n\n`,
  )
  await sleep(1500)

  // The processor caught up and given nothing: what it costs to wait (fetch long-polls, heartbeats,
  // timers). Each load's CPU per change is split into this share (its duration × this rate), the
  // topology's own processing, and the rest (the runtime's Kafka requests and Redis round trips).
  const idleBefore = await ask<ProcessorStats>(processor, 'stats')
  const idleStarted = performance.now()
  await sleep(IDLE_SECONDS * 1000)
  const idleAfter = await ask<ProcessorStats>(processor, 'stats')
  const idleSeconds = (performance.now() - idleStarted) / 1000
  const idleCpuPerSecond = (idleAfter.cpuMs - idleBefore.cpuMs) / idleSeconds
  const idleLine = `processor with no input for ${idleSeconds.toFixed(1)} s: ${idleCpuPerSecond.toFixed(1)} ms CPU/s; Kafka requests/s ${requestsPer(idleBefore.requests, idleAfter.requests, idleSeconds)}; socket writes/s ${writesPer(idleBefore.writes, idleAfter.writes, idleSeconds)}`
  process.stdout.write(`${idleLine}\n\n`)

  // The sink (this process) is profiled over the same loads.
  let sinkProfile: (() => Promise<void>) | undefined
  if (process.env.BENCH_PROFILE) {
    processor.send({ ask: 'profile-start' })
    sinkProfile = await startProfile('sink')
  }
  let version = 1
  const results: string[] = []
  const splits: string[] = []
  for (const load of LOADS) {
    for (const kind of ['ticket', 'customer'] as const) {
      if (!KINDS.includes(kind === 'ticket' ? 'direct' : 're-trigger')) continue
      const rowsPerChange = kind === 'ticket' ? 1 : PER_CUSTOMER
      lags.length = 0
      sentLags.length = 0
      const before = {
        at: performance.now(),
        processor: await ask<ProcessorStats>(processor, 'stats'),
        sinkCpu: cpuMs(),
        sinkWrites: { ...socketWrites },
        sink: { ...sinkStats },
      }
      let changes = 0
      const send = () => {
        const id = kind === 'ticket' ? changes % tickets : changes % CUSTOMERS
        producer.send({ kind, id, version })
        changes++
        if (changes % (kind === 'ticket' ? tickets : CUSTOMERS) === 0) version++
      }
      if (load === 'idle') {
        for (let i = 0; i < IDLE_PROBES; i++) {
          const want = lags.length + rowsPerChange
          send()
          await rowsSeen(want, 10_000)
          await sleep(300)
        }
      } else {
        const rate = (load === 'half' ? halfRate : load === 'warm' ? 50 : Number(load)) / rowsPerChange
        const seconds = load === 'warm' ? WARMUP_SECONDS / 2 : SECONDS
        const t0 = Date.now()
        while (Date.now() - t0 < seconds * 1000) {
          const due = Math.floor(((Date.now() - t0) / 1000) * rate)
          while (changes < due) send()
          // Until the next change is due (no polling: this process's CPU is the sink's figure).
          await sleep(Math.max(1, Math.ceil(t0 + ((changes + 1) / rate) * 1000 - Date.now())))
        }
        await rowsSeen(changes * rowsPerChange, 30_000)
        await sleep(500)
      }
      version++
      const after = {
        at: performance.now(),
        processor: await ask<ProcessorStats>(processor, 'stats'),
        sinkCpu: cpuMs(),
        sinkWrites: { ...socketWrites },
        sink: { ...sinkStats },
      }
      const sorted = [...lags].sort((a, b) => a - b)
      const sent = [...sentLags].sort((a, b) => a - b)
      const pBatches = after.processor.batches - before.processor.batches
      const sBatches = after.sink.batches - before.sink.batches
      const per = (x: number, n: number) => (n === 0 ? 0 : x / n)
      const procCpu = per(after.processor.cpuMs - before.processor.cpuMs, changes)
      const idleShare = per((idleCpuPerSecond * (after.at - before.at)) / 1000, changes)
      const topologyCpu = per(after.processor.processCpuMs - before.processor.processCpuMs, changes)
      if (load === 'warm') {
        process.stdout.write(
          `warm-up, not measured: ${changes} ${kind === 'ticket' ? 'direct' : 're-trigger'} changes at 50 rows/s (CPU per change ${procCpu.toFixed(1)} + ${per(after.sinkCpu - before.sinkCpu, changes).toFixed(1)} ms)\n`,
        )
        continue
      }
      results.push(
        [
          load.padEnd(5),
          (kind === 'ticket' ? 'direct' : `re-trigger ×${PER_CUSTOMER}`).padEnd(14),
          `${String(changes).padStart(5)} chg ${String(sorted.length).padStart(5)} rows`,
          `p50 ${pct(sorted, 50)} p95 ${pct(sorted, 95)} p99 ${pct(sorted, 99)} max ${pct(sorted, 100)} ms`,
          `sent p50 ${pct(sent, 50)} p99 ${pct(sent, 99)} ms`,
          `proc ${per(after.processor.processMs - before.processor.processMs, pBatches).toFixed(1)}+${per(after.processor.transactionMs - before.processor.transactionMs, pBatches).toFixed(1)} ms/txn, ${per(pBatches, changes).toFixed(2)} txn/chg`,
          `sink ${per(after.sink.writeMs - before.sink.writeMs, sBatches).toFixed(1)} ms/txn, ${per(sBatches, changes).toFixed(2)} txn/chg`,
          `cpu/chg proc ${per(after.processor.cpuMs - before.processor.cpuMs, changes).toFixed(1)} sink ${per(after.sinkCpu - before.sinkCpu, changes).toFixed(1)} ms`,
          `writes/chg proc ${writesPer(before.processor.writes, after.processor.writes, changes)} sink ${writesPer(before.sinkWrites, after.sinkWrites, changes, ['kafka', 'pg'])}`,
        ].join(' | '),
      )
      splits.push(
        [
          load.padEnd(5),
          (kind === 'ticket' ? 'direct' : `re-trigger ×${PER_CUSTOMER}`).padEnd(14),
          `proc cpu/chg ${procCpu.toFixed(1)} ms = idle ${idleShare.toFixed(1)} + topology ${topologyCpu.toFixed(1)} + runtime I/O ${(procCpu - idleShare - topologyCpu).toFixed(1)}`,
          `Kafka requests/chg ${requestsPer(before.processor.requests, after.processor.requests, Math.max(1, changes))}`,
        ].join(' | '),
      )
      process.stdout.write(`${results[results.length - 1]}\n`)
    }
  }
  process.stdout.write(
    `\nload  kind           | changes, rows | append → visible (sink commit − broker append: ragstream's part) | sent → visible (sink commit − change sent) | processor: processing + transaction per batch, batches per change | sink: write + commit per batch | CPU per change | socket writes (≈ send syscalls) per change, by service\n`,
  )
  process.stdout.write(
    `\nWhere the processor's CPU per change went (idle: its CPU/s with no input × the load's duration; topology: CPU inside process(); runtime I/O: the rest — Kafka requests, Redis round trips, the loop)\n${idleLine}\n${splits.join('\n')}\n`,
  )
  if (process.env.BENCH_SINK_DECODE)
    process.stdout.write(
      `sink decode: ${sinkParts.decodes} records, ${(sinkParts.decodeUs / sinkParts.decodes).toFixed(1)} µs CPU each\n`,
    )
  process.stdout.write(
    `machine load average (1/5/15 min): ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}\n`,
  )

  if (process.env.BENCH_PROFILE) {
    await sinkProfile?.()
    processor.send({ ask: 'profile-stop' })
    await sleep(2000)
  }
  processor.send({ ask: 'stop' })
  producer.send({ ask: 'stop' })
  await new Promise((resolve) => processor.once('exit', resolve))
  sink.stop()
  await sinkDone.catch(() => {})
  await reader.end()
  // Clean up: topics, groups, Redis keys, the version's table.
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(NAME) || t.startsWith(`rag.chunks.${NAME}`))
  await admin.deleteTopics({ topics }).catch(() => {})
  const groups = [...(await admin.listGroups()).keys()].filter(
    (g) => g.startsWith(NAME) || g.includes(`bench_fresh_${RUN}`),
  )
  if (groups.length > 0) await admin.deleteGroups({ groups }).catch(() => {})
  await admin.close()
  const redis = new Redis(config.endpoints.redisUrl)
  for (const pattern of [`rs:{${NAME}*`, `${NAME}-emb:*`]) {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  }
  redis.disconnect()
  const owner = await connectPostgres(config.postgres.ownerUrl, `${NAME}-cleanup`)
  const n = d.sink.names
  // The bench's topology and its only version (active, so promote's drop would keep it): tables, views, registration.
  await owner.query(`DROP TABLE IF EXISTS ${n.chunkTable}, ${n.tombstoneTable} CASCADE`)
  await owner.query(`DELETE FROM ${n.versionsTable} WHERE topology = $1`, [d.sink.topology]).catch(() => {})
  await owner.end()
}

const role = process.argv[2]
if (role === 'processor') await processorChild()
else if (role === 'producer') await producerChild()
else await main()
