/**
 * Scale benchmark (issue 19): backfills the reference topology (support-copilot: tickets joined with
 * customers and products, governed, chunked, embedded, written to pgvector) at several sizes with hot
 * foreign keys — 10 products and 50 customers however many tickets — end to end, and prints per size:
 *   - time to caught up: processor (sources and repartition topics read to the end) and sink (chunk
 *     topic read to the end), from the moment both start on the already-written backlog; then the one
 *     vector-index build, and the end-to-end time (sink caught up + index built);
 *   - CPU seconds and peak RSS of the processor process and of the sink process (each runs in its own
 *     child), and the CPU seconds of the Postgres backend that builds the index;
 *   - bytes on disk per internal topic (changelogs, repartitions) and for the chunk topic;
 *   - Redis bytes per ticket (MEMORY USAGE of every state key of the run; the run's embedding cache apart)
 *     and the chunk table's bytes in Postgres (heap and vector index);
 * then the growth from the second size to the last against linear (the issue asks for ≤ 1.3× linear).
 * The baseline in the same run is linear growth from the smaller size: a quadratic store (the earlier
 * list-per-right-key subscriptions) shows up as a ratio near ×4 for ×4 the tickets.
 *
 * The sink loads as `replay --bulk` does: the table is created without its vector index, the sink
 * writes its ordinary exactly-once batches into it, and once it has caught up the index is built in
 * one pass. Inserting every row into an HNSW graph is what kept the sink from catching up at 160k
 * tickets (> 1,650 s); BENCH_INDEX=incremental measures that path instead.
 *
 *   node_modules/.bin/node bench/scale.ts                  # BENCH_SIZES=10000,40000,160000
 *   nice -n 10 node_modules/.bin/node bench/scale.ts       # on a shared machine
 *
 * Options (environment): BENCH_SIZES; BENCH_PARTITIONS (3); BENCH_CUSTOMERS (50);
 * BENCH_PROCESSOR_ONLY=1 runs no sink (e.g. BENCH_SIZES=1000000 BENCH_PROCESSOR_ONLY=1);
 * BENCH_INDEX=bulk|incremental (bulk); BENCH_INDEX_MEM (512MB) and BENCH_INDEX_WORKERS (0: the backend
 * alone, so its CPU seconds are the build's) for the index build;
 * BENCH_KEEP=1 keeps topics, Redis keys and the table. Embeddings use the built-in hashing embedder, so
 * the figures are the pipeline's own cost. Kafka bytes are read from the local broker's log directory
 * (RAGSTREAM_STACK_DIR/kafka/data), so run it against the local stack. The machine is shared: compare
 * ratios within one run.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
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
import { PgvectorSink } from '../src/sink/pgvector-sink.ts'
import { buildVectorIndex } from '../src/sink/migrations.ts'
import { RedisStateBackend } from '../src/state/redis-store.ts'
import type { StateStore } from '../src/state/store.ts'

const SIZES = (process.env.BENCH_SIZES ?? '10000,40000,160000').split(',').map(Number)
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 3)
const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 50)
const PROCESSOR_ONLY = process.env.BENCH_PROCESSOR_ONLY === '1'
const KEEP = process.env.BENCH_KEEP === '1'
const BULK = (process.env.BENCH_INDEX ?? 'bulk') === 'bulk'
const INDEX_MEM = process.env.BENCH_INDEX_MEM ?? '512MB'
const INDEX_WORKERS = Number(process.env.BENCH_INDEX_WORKERS ?? 0)
const STACK_DIR = process.env.RAGSTREAM_STACK_DIR ?? join(process.cwd(), '.stack')

interface RunSpec {
  readonly name: string
  readonly version: string
  readonly prefix: string
  readonly cachePrefix: string
  /** Load the table without its vector index and build it once at the end (as `replay --bulk`). */
  readonly bulk: boolean
}

async function deploymentOf(spec: RunSpec): Promise<Deployment> {
  const d = deployment({
    app: await loadApp('support-copilot'),
    version: spec.version,
    name: spec.name,
    prefix: spec.prefix,
    sqlTopology: spec.name.replaceAll('-', '_'),
    cachePrefix: spec.cachePrefix,
    embedding: { kind: 'hashing', dimensions: 384 },
    config: loadConfig(),
  })
  return spec.bulk ? { ...d, sink: { ...d.sink, deferIndex: true } } : d
}

// ---------------------------------------------------------------- children: one part each

/** Runs the processor or the sink until SIGTERM, then prints its CPU seconds and peak RSS as JSON. */
async function child(role: 'processor' | 'sink', spec: RunSpec): Promise<void> {
  const d = await deploymentOf(spec)
  const e = d.config.endpoints
  let stop: () => void
  let done: Promise<unknown>
  let close: () => Promise<unknown>
  if (role === 'processor') {
    const services = deploymentServices(d)
    const topology = await compileForBroker(buildTopology(d, services), e)
    const backend = RedisStateBackend.fromEndpoints(d.applicationId, e)
    const stores = new Map<string, StateStore>(topology.storeNames.map((n) => [n, backend.store(n)]))
    const runtime = new KafkaRuntime(topology, { brokers: e.kafkaBrokers, stores, instanceId: 'bench' })
    done = runtime.run()
    stop = () => runtime.stop()
    close = () => Promise.allSettled([services.close(), backend.close()])
  } else {
    const sink = new PgvectorSink({
      config: d.sink,
      postgresUrl: d.config.postgres.sinkUrl,
      kafkaBrokers: e.kafkaBrokers,
      schemaRegistryUrl: e.schemaRegistryUrl,
    })
    done = sink.run()
    stop = () => sink.stop()
    close = async () => {}
  }
  let peakRss = 0
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 500)
  process.once('SIGTERM', () => stop())
  await done
  clearInterval(sampler)
  await close()
  const cpu = process.cpuUsage()
  process.stdout.write(`${JSON.stringify({ cpuS: (cpu.user + cpu.system) / 1e6, peakRssMb: peakRss / 2 ** 20 })}\n`)
  process.exit(0)
}

// ---------------------------------------------------------------- parent

interface SizeResult {
  readonly tickets: number
  readonly produceS: number
  readonly processorS: number
  readonly sinkS: number | undefined
  readonly processorCpuS: number
  readonly sinkCpuS: number | undefined
  readonly processorRssMb: number
  readonly sinkRssMb: number | undefined
  /** The one vector-index build after the bulk load: wall seconds and CPU seconds of its Postgres backend. */
  readonly indexS: number | undefined
  readonly indexCpuS: number | undefined
  /** Chunk table: heap (with TOAST) and vector index bytes; rows. */
  readonly tableBytes: number | undefined
  readonly indexBytes: number | undefined
  readonly rows: number | undefined
  readonly topicBytes: ReadonlyMap<string, number>
  readonly redisStateBytes: number
  readonly redisCacheBytes: number
}

function spawnChild(
  role: string,
  spec: RunSpec,
): { process: ChildProcess; result: Promise<{ cpuS: number; peakRssMb: number }> } {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, BENCH_ROLE: role, BENCH_SPEC: JSON.stringify(spec) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  proc.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const result = new Promise<{ cpuS: number; peakRssMb: number }>((resolve, reject) => {
    proc.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? ''
      try {
        resolve(JSON.parse(line) as { cpuS: number; peakRssMb: number })
      } catch {
        reject(new Error(`${role} exited with ${code} and no result: ${out.slice(-500)}`))
      }
    })
  })
  return { process: proc, result }
}

/** Read to the end (a partition never committed counts when it is empty, e.g. the deletions topic). */
const drained = (lags: readonly PartitionLag[], slack: number): boolean =>
  lags.some((l) => l.committed !== null) && lags.every((l) => l.lag <= slack)

/** Bytes on disk of each topic's partition directories in the local broker's log directory. */
function topicBytes(prefixes: readonly string[]): Map<string, number> {
  const dir = join(STACK_DIR, 'kafka', 'data')
  const bytes = new Map<string, number>()
  for (const entry of readdirSync(dir)) {
    const topic = entry.replace(/-\d+$/, '')
    if (!prefixes.some((p) => topic.startsWith(p))) continue
    let size = 0
    // Segments only: index files are preallocated (10 MiB each) whatever the data.
    for (const file of readdirSync(join(dir, entry)))
      if (file.endsWith('.log')) size += statSync(join(dir, entry, file)).size
    bytes.set(topic, (bytes.get(topic) ?? 0) + size)
  }
  return bytes
}

async function redisBytes(redis: Redis, pattern: string): Promise<{ bytes: number; keys: string[] }> {
  let cursor = '0'
  let bytes = 0
  const keys: string[] = []
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = next
    for (const key of found) {
      keys.push(key)
      bytes += Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0)
    }
  } while (cursor !== '0')
  return { bytes, keys }
}

async function runSize(tickets: number): Promise<SizeResult> {
  const id = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4).toString(36)}`
  const spec: RunSpec = {
    name: `bench-scale-${id}`,
    version: 'v1',
    prefix: `bench-scale-${id}`,
    cachePrefix: `rs:bench-scale-${id}`,
    bulk: BULK,
  }
  const d = await deploymentOf(spec)
  const e = d.config.endpoints
  const admin = new Admin({ clientId: `${spec.name}-admin`, bootstrapBrokers: [...e.kafkaBrokers] })
  const dataset = new SupportDataset({ seed: 19, server: spec.prefix, withSchema: false, malformedRate: 0 })
  const sources = sourceTopics(d)
  const redis = new Redis(e.redisUrl)
  try {
    await admin.createTopics({
      topics: sources,
      partitions: PARTITIONS,
      replicas: 1,
      configs: [{ name: 'cleanup.policy', value: 'compact' }],
    })
    const t0 = performance.now()
    const producer = new Producer({
      clientId: `${spec.name}-gen`,
      bootstrapBrokers: [...e.kafkaBrokers],
      idempotent: true,
    })
    let pending: { topic: string; key?: Buffer; value?: Buffer }[] = []
    for (const r of dataset.backfill(tickets, CUSTOMERS)) {
      pending.push({ topic: r.topic, key: r.key ?? undefined, value: r.value ?? undefined })
      if (pending.length >= 2000) {
        await producer.send({ messages: pending })
        pending = []
      }
    }
    if (pending.length > 0) await producer.send({ messages: pending })
    await producer.close()
    const produceS = (performance.now() - t0) / 1000

    if (!PROCESSOR_ONLY) await prepareDatabase(d)
    await ensureChunkTopic(d, sources)
    const started = performance.now()
    const processor = spawnChild('processor', spec)
    const sink = PROCESSOR_ONLY ? undefined : spawnChild('sink', spec)
    let processorS: number | undefined
    let sinkS: number | undefined
    const repartitions = (await compileForBroker(buildTopology(d, deploymentServices(d)), e)).topics
      .filter((t) => t.role === 'repartition')
      .map((t) => t.name)
    let readings = 0
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000))
      const elapsed = (performance.now() - started) / 1000
      if (processor.process.exitCode !== null) throw new Error('the processor exited early')
      const [src, rep] = await Promise.all([
        consumerLag(admin, d.applicationId, sources),
        consumerLag(admin, d.applicationId, repartitions),
      ])
      // A lag of 1 on a transactional topic is its last commit marker.
      if (processorS === undefined && drained(src, 0) && rep.every((l) => l.lag <= 1)) processorS = elapsed
      const chunkLag =
        sink !== undefined && sinkS === undefined ? await consumerLag(admin, d.sink.groupId, [d.chunkTopic]) : undefined
      if (processorS !== undefined && chunkLag !== undefined && drained(chunkLag, 1)) sinkS = elapsed
      if (processorS !== undefined && (sink === undefined || sinkS !== undefined)) {
        if (++readings >= 2) break
      }
      if (process.env.BENCH_DEBUG === '1' || Math.round(elapsed) % 30 === 0) {
        const lag = (lags: readonly PartitionLag[]): string =>
          lags.map((l) => `${l.lag}${l.committed === null ? '?' : ''}`).join(',')
        process.stderr.write(
          `  ${tickets} tickets: ${elapsed.toFixed(0)} s, lag: sources ${lag(src)}; repartitions ${lag(rep)}; processor ${processorS === undefined ? 'catching up' : `caught up at ${processorS.toFixed(1)} s`}${chunkLag ? `; sink lag ${lag(chunkLag)}` : ''}\n`,
        )
      }
    }
    processor.process.kill('SIGTERM')
    sink?.process.kill('SIGTERM')
    const [p, s] = await Promise.all([processor.result, sink?.result])
    const table = PROCESSOR_ONLY ? undefined : await buildIndexAndMeasure(d, tickets)
    // Give the broker a moment to roll its writes into the log files it reports.
    await new Promise((r) => setTimeout(r, 2000))
    const bytes = topicBytes([d.applicationId, d.chunkTopic])
    const state = await redisBytes(redis, `rs:{${d.applicationId}:*`)
    const cache = await redisBytes(redis, `${spec.cachePrefix}*`)
    if (!KEEP) {
      for (const key of [...state.keys, ...cache.keys]) await redis.unlink(key)
      const topics = [...sources, d.chunkTopic, ...bytes.keys()].filter((t, i, all) => all.indexOf(t) === i)
      await admin.deleteTopics({ topics }).catch(() => {})
      if (!PROCESSOR_ONLY) {
        const owner = await connectPostgres(d.config.postgres.ownerUrl, 'bench-scale')
        await owner.query(`DROP TABLE IF EXISTS ${d.sink.names.chunkTable} CASCADE`).catch(() => {})
        await owner.end()
      }
    }
    return {
      tickets,
      produceS,
      processorS: processorS!,
      sinkS,
      processorCpuS: p.cpuS,
      sinkCpuS: s?.cpuS,
      processorRssMb: p.peakRssMb,
      sinkRssMb: s?.peakRssMb,
      indexS: table?.indexS,
      indexCpuS: table?.indexCpuS,
      tableBytes: table?.tableBytes,
      indexBytes: table?.indexBytes,
      rows: table?.rows,
      topicBytes: new Map(
        [...bytes].map(([t, b]) => [
          t === d.chunkTopic
            ? 'chunk topic'
            : t.startsWith(`${spec.prefix}.`)
              ? `source ${t.slice(spec.prefix.length + 1)}`
              : t.replace(`${d.applicationId}-`, ''),
          b,
        ]),
      ),
      redisStateBytes: state.bytes,
      redisCacheBytes: cache.bytes,
    }
  } finally {
    await admin.close()
    redis.disconnect()
  }
}

/** CPU seconds (user + system) a process has used, from /proc (the Postgres backend runs on this machine). */
function processCpuS(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/**
 * Bulk mode: builds the vector index once, now that the load is complete (as `replay --bulk` does after
 * catching up), timing it and the CPU of the backend that builds it; then the table's size on disk.
 */
async function buildIndexAndMeasure(
  d: Deployment,
  tickets: number,
): Promise<{ indexS?: number; indexCpuS?: number; tableBytes: number; indexBytes: number; rows: number }> {
  const owner = await connectPostgres(d.config.postgres.ownerUrl, 'bench-scale-index')
  try {
    let indexS: number | undefined
    let indexCpuS: number | undefined
    if (BULK) {
      process.stderr.write(`  ${tickets} tickets: building the vector index once…\n`)
      const pid = (await owner.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid
      const cpuBefore = processCpuS(pid)
      const built = await buildVectorIndex(owner, d.sink, {
        maintenanceWorkMem: INDEX_MEM,
        parallelWorkers: INDEX_WORKERS,
      })
      indexS = built.seconds
      indexCpuS = processCpuS(pid) - cpuBefore
    }
    // Counted as the administrator: the owner sees no rows through the table's forced row-level security.
    const admin = await connectPostgres(d.config.postgres.adminUrl, 'bench-scale-size')
    const size = await admin
      .query<{ heap: string; index: string; rows: string }>(
        `SELECT pg_table_size($1::regclass) AS heap, pg_indexes_size($1::regclass) AS index,
                (SELECT count(*) FROM ${d.sink.names.chunkTable}) AS rows`,
        [d.sink.names.chunkTable],
      )
      .finally(() => admin.end().catch(() => {}))
    const row = size.rows[0]
    return { indexS, indexCpuS, tableBytes: Number(row.heap), indexBytes: Number(row.index), rows: Number(row.rows) }
  } finally {
    await owner.end().catch(() => {})
  }
}

const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1)

/** A table: a header row and right-aligned cells, `-` for a figure not measured. */
function table(header: readonly string[], rows: readonly (readonly (string | undefined)[])[]): string[] {
  const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '-').length)))
  const line = (cells: readonly (string | undefined)[]): string =>
    cells.map((c, i) => (c ?? '-').padStart(width[i])).join('  ')
  return [line(header), ...rows.map(line)]
}

const fixed = (x: number | undefined, digits = 1): string | undefined => x?.toFixed(digits)
const endToEnd = (r: SizeResult): number | undefined => (r.sinkS === undefined ? undefined : r.sinkS + (r.indexS ?? 0))

function report(results: readonly SizeResult[]): string {
  const lines: string[] = []
  lines.push(
    `support-copilot backfill, ${PARTITIONS} partitions, 10 products, ${CUSTOMERS} customers, hashing embedder, ` +
      (PROCESSOR_ONLY
        ? 'processor only'
        : BULK
          ? `bulk load + one index build (maintenance_work_mem ${INDEX_MEM}, ${INDEX_WORKERS} parallel workers)`
          : 'incremental HNSW inserts'),
  )
  lines.push('')
  lines.push('seconds (wall, from the start on the written backlog) and CPU seconds per process')
  lines.push(
    ...table(
      ['tickets', 'produce', 'processor', 'sink', 'index', 'end to end', 'proc CPU', 'sink CPU', 'index CPU'],
      results.map((r) => [
        String(r.tickets),
        fixed(r.produceS),
        fixed(r.processorS),
        fixed(r.sinkS),
        fixed(r.indexS),
        fixed(endToEnd(r)),
        fixed(r.processorCpuS),
        fixed(r.sinkCpuS),
        fixed(r.indexCpuS),
      ]),
    ),
  )
  lines.push('')
  lines.push('memory and storage')
  lines.push(
    ...table(
      ['tickets', 'proc RSS MB', 'sink RSS MB', 'Redis B/ticket', 'cache B/ticket', 'rows', 'table MB', 'index MB'],
      results.map((r) => [
        String(r.tickets),
        fixed(r.processorRssMb, 0),
        fixed(r.sinkRssMb, 0),
        (r.redisStateBytes / r.tickets).toFixed(0),
        (r.redisCacheBytes / r.tickets).toFixed(0),
        r.rows === undefined ? undefined : String(r.rows),
        r.tableBytes === undefined ? undefined : mb(r.tableBytes),
        r.indexBytes === undefined ? undefined : mb(r.indexBytes),
      ]),
    ),
  )
  const topics = [...new Set(results.flatMap((r) => [...r.topicBytes.keys()]))].sort()
  lines.push('')
  lines.push(`MB on disk per topic: ${results.map((r) => r.tickets).join(' / ')} tickets`)
  for (const topic of topics)
    lines.push(`  ${topic.padEnd(58)} ${results.map((r) => mb(r.topicBytes.get(topic) ?? 0).padStart(8)).join(' ')}`)
  // Growth between consecutive sizes against linear: y₂ / y₁ / (tickets₂ / tickets₁); 1.00× is linear.
  for (let i = 1; i < results.length; i++) {
    const a = results[i - 1]
    const b = results[i]
    const scale = b.tickets / a.tickets
    // A figure that did not grow at all (the 10 products, the 50 customers) is marked constant.
    const vsLinear = (x: number | undefined, y: number | undefined): string =>
      x === undefined || y === undefined || x === 0
        ? '-'
        : `${(y / x / scale).toFixed(2)}×${Math.abs(y / x - 1) < 0.1 ? ' (constant)' : ''}`
    lines.push('')
    lines.push(`growth ${a.tickets} → ${b.tickets} (×${scale}) against linear (1.00× = linear; the bar is ≤ 1.30×):`)
    lines.push(
      `  time: processor ${vsLinear(a.processorS, b.processorS)}, sink ${vsLinear(a.sinkS, b.sinkS)}, index ${vsLinear(a.indexS, b.indexS)}, end to end ${vsLinear(endToEnd(a), endToEnd(b))}`,
    )
    lines.push(
      `  CPU: processor ${vsLinear(a.processorCpuS, b.processorCpuS)}, sink ${vsLinear(a.sinkCpuS, b.sinkCpuS)}, index ${vsLinear(a.indexCpuS, b.indexCpuS)}`,
    )
    lines.push(
      `  RSS: processor ${vsLinear(a.processorRssMb, b.processorRssMb)}, sink ${vsLinear(a.sinkRssMb, b.sinkRssMb)} (a fixed part dominates small sizes)`,
    )
    lines.push(
      `  Redis state ${vsLinear(a.redisStateBytes, b.redisStateBytes)}, embedding cache ${vsLinear(a.redisCacheBytes, b.redisCacheBytes)}, table ${vsLinear(a.tableBytes, b.tableBytes)}, index ${vsLinear(a.indexBytes, b.indexBytes)}`,
    )
    for (const topic of topics)
      lines.push(`  ${topic.padEnd(58)} ${vsLinear(a.topicBytes.get(topic), b.topicBytes.get(topic))}`)
  }
  return lines.join('\n')
}

async function main(): Promise<void> {
  const role = process.env.BENCH_ROLE
  if (role === 'processor' || role === 'sink') return child(role, JSON.parse(process.env.BENCH_SPEC!) as RunSpec)
  const results: SizeResult[] = []
  for (const size of SIZES) {
    process.stderr.write(`backfilling ${size} tickets…\n`)
    results.push(await runSize(size))
    process.stdout.write(`${report(results)}\n\n`)
  }
}

await main()
