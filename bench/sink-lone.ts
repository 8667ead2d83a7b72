/**
 * Where a lone change's time and CPU go in the pgvector sink (issue 18): one sink on the local stack,
 * one chunk event at a time (a transactional produce, then a pause), each timed from the producer's
 * commit returning to the sink's `batch-begin` (fetched and decoded) and to its COMMIT returning, and
 * the sink's Postgres statements counted and timed per batch (a counting wrapper of the real client).
 * CPU is this process's: the idle cost per second (fetch polls, heartbeats) is measured first with no
 * traffic, and a change's CPU is the probes' CPU minus that idle rate over their duration.
 *
 *   node bench/sink-lone.ts          # BENCH_LONE_PROBES=40 BENCH_LONE_PAUSE_MS=250 BENCH_LONE_IDLE_S=5
 *
 * The machine is shared: compare within one run; the closing line prints its load average.
 */
import { loadavg } from 'node:os'
import { Socket } from 'node:net'
import pg from 'pg'
import { PgvectorSink, type SinkLogEvent } from '../src/sink/pgvector-sink.ts'
import { chunkEvent, chunkProducer, createSinkEnv } from '../test/sink/support.ts'
import { endpoints } from '../test/support/stack.ts'

const PROBES = Number(process.env.BENCH_LONE_PROBES ?? 40)
const PAUSE_MS = Number(process.env.BENCH_LONE_PAUSE_MS ?? 250)
const IDLE_S = Number(process.env.BENCH_LONE_IDLE_S ?? 5)
const DIMS = Number(process.env.BENCH_LONE_DIMS ?? 384)

const cleanups: (() => Promise<void>)[] = []
const t = { after: (fn: () => Promise<void>) => void cleanups.push(fn) }
const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]
}

// Socket writes by service (≈ send syscalls).
const writes: Record<string, number> = {}
const ports = new Map<number, string>([
  [Number(new URL(endpoints.postgresUrl).port || 5432), 'pg'],
  ...endpoints.kafkaBrokers.map((b) => [Number(b.split(':').pop()), 'kafka'] as [number, string]),
])
const proto = Socket.prototype as unknown as { _writeGeneric: (...args: unknown[]) => unknown }
const write = proto._writeGeneric
proto._writeGeneric = function (this: Socket, ...args: unknown[]) {
  const s = ports.get(this.remotePort ?? 0) ?? 'other'
  writes[s] = (writes[s] ?? 0) + 1
  return write.apply(this, args)
}

// The sink's statements: counted and timed (its client is the one named `ragstream-sink …`).
const statements = { n: 0, ms: 0 }
const query = pg.Client.prototype.query as (...args: unknown[]) => unknown
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const app = (this as unknown as { connectionParameters: { application_name?: string } }).connectionParameters
    .application_name
  const result = query.apply(this, args)
  if (!app?.startsWith('ragstream-sink') || !(result instanceof Promise)) return result
  const begun = performance.now()
  statements.n++
  return result.finally(() => (statements.ms += performance.now() - begun))
} as typeof pg.Client.prototype.query

const env = await createSinkEnv(t, { dims: DIMS, partitions: 2 })
const producer = await chunkProducer(t, env.config)
let onCommitted: ((e: SinkLogEvent & { event: 'batch-committed' }) => void) | undefined
let begunAt = 0
const sink = new PgvectorSink({
  config: env.config,
  postgresUrl: env.sinkUrl,
  kafkaBrokers: endpoints.kafkaBrokers,
  schemaRegistryUrl: endpoints.schemaRegistryUrl,
  log: (e) => {
    if (e.event === 'batch-begin') begunAt = performance.now()
    if (e.event === 'batch-committed') onCommitted?.(e)
  },
})
const done = sink.run()
const committed = () =>
  new Promise<number>((resolve) => {
    onCommitted = () => {
      onCommitted = undefined
      resolve(performance.now())
    }
  })
// Warm up: the assignment, the schema, the first connection.
for (let i = 0; i < 3; i++) {
  const c = committed()
  await producer.send([
    { key: `warm${i}#0`, value: await producer.encodeChunk(chunkEvent(env.config, { id: `warm${i}#0` })) },
  ])
  await c
}
await sleep(1000)

const idle0 = { cpu: cpuMs(), at: performance.now(), w: { ...writes } }
await sleep(IDLE_S * 1000)
const idleCpuPerS = (cpuMs() - idle0.cpu) / ((performance.now() - idle0.at) / 1000)
const idleWritesPerS = Object.fromEntries(
  Object.entries(writes).map(([k, v]) => [k, (v - (idle0.w[k] ?? 0)) / ((performance.now() - idle0.at) / 1000)]),
)

const toBegin: number[] = []
const toCommit: number[] = []
const beginToCommit: number[] = []
const values = await Promise.all(
  Array.from({ length: PROBES }, (_, i) => producer.encodeChunk(chunkEvent(env.config, { id: `lone${i}#0` }))),
)
const s0 = { ...statements, cpu: cpuMs(), at: performance.now(), w: { ...writes } }
let produceCpu = 0
for (let i = 0; i < PROBES; i++) {
  const c = committed()
  const cpuBefore = cpuMs()
  await producer.send([{ key: `lone${i}#0`, value: values[i], partition: i % 2 }])
  const sentAt = performance.now()
  produceCpu += cpuMs() - cpuBefore
  const at = await c
  // A commit can come before send() returns to us: then both are ~0.
  toBegin.push(Math.max(0, begunAt - sentAt))
  toCommit.push(Math.max(0, at - sentAt))
  beginToCommit.push(at - begunAt)
  await sleep(PAUSE_MS)
}
const elapsedS = (performance.now() - s0.at) / 1000
const totalCpu = cpuMs() - s0.cpu
const perChange = (totalCpu - produceCpu - idleCpuPerS * elapsedS) / PROBES
const f = (x: number) => x.toFixed(1)
process.stdout.write(
  [
    `idle: ${f(idleCpuPerS)} ms CPU/s, socket writes/s ${Object.entries(idleWritesPerS)
      .map(([k, v]) => `${k} ${f(v)}`)
      .join(' ')}`,
    `${PROBES} lone changes (${DIMS} dims, ${PAUSE_MS} ms apart): producer commit → batch-begin p50 ${f(pct(toBegin, 50))} p99 ${f(pct(toBegin, 99))} ms; → COMMIT returned p50 ${f(pct(toCommit, 50))} p99 ${f(pct(toCommit, 99))} ms; batch-begin → COMMIT p50 ${f(pct(beginToCommit, 50))} p99 ${f(pct(beginToCommit, 99))} ms`,
    `per change: ${f((statements.n - s0.n) / PROBES)} Postgres statements (${f((statements.ms - s0.ms) / PROBES)} ms), socket writes ${Object.entries(
      writes,
    )
      .map(([k, v]) => `${k} ${f((v - (s0.w[k] ?? 0)) / PROBES)}`)
      .join(
        ' ',
      )} (producer's included); sink CPU ${f(perChange)} ms beyond idle (the producer's ${f(produceCpu / PROBES)} ms left out; idle over the probes ${f((idleCpuPerS * elapsedS) / PROBES)} ms per change)`,
    `machine load average (1/5/15 min): ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}`,
  ].join('\n') + '\n',
)
sink.stop()
await done.catch(() => {})
for (const fn of cleanups.reverse()) await fn().catch(() => {})
process.exit(0)
