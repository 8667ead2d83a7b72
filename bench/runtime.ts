/**
 * Runtime benchmark: in one run on the same broker, a backlog of N records is processed by
 *   1. raw          — a plain @platformatic/kafka consume → produce loop (consumer stream, idempotent
 *                     producer, offsets committed per batch; at-least-once, no transactions);
 *   2. passthrough  — ragstream's runtime with exactly-once on, a stateless pass-through topology;
 *   3. dsl-table    — ragstream's runtime running topologies/passthrough.ts's shape from the DSL
 *                     (table → to: store put + changelog record per input record), in-memory store;
 *   4. fk-join      — a DSL left foreign-key join (KIP-213) of the same records (as tickets) with a
 *                     10 000-row customers table: subscription and response repartition topics,
 *                     four changelogged stores; events/s counts input tickets;
 *   5. aggregate    — a DSL groupBy(customer).aggregate of the same records (as tickets): a child
 *                     change is a group-by repartition record (two when it moves customers) and one
 *                     write of the customer's aggregate; events/s counts input tickets, and the
 *                     line after the table gives the aggregate store's writes per input ticket.
 *   6. collect-hot  — a DSL groupBy(() => 'hot').collect({ limit: 20 }) of the same records: ONE parent
 *                     whose children are all the input keys (50 000 once the backlog is that large;
 *                     every later record changes a child of a parent that has them all), its top 20
 *                     kept in place; a single task owns it, so this is the hot-parent worst case. The
 *                     line after the table gives the collect store's writes per input ticket: constant
 *                     (its old entry, its new one, the document), however many children the parent has.
 * Each runs in its own child process, so CPU time (user+system, µs per record) and peak RSS belong to
 * that loop alone. Throughput is records/s over the whole catch-up, from start to the last record.
 *
 *   node_modules/.bin/node bench/runtime.ts            # BENCH_RECORDS=1000000 BENCH_PARTITIONS=3
 *
 * Options (environment): BENCH_VARIANTS=raw,fk-join runs only those (ratios are against the first);
 * BENCH_BATCH (1000); BENCH_DETAIL=1 prints, per runtime child, the records and bytes it read and
 * wrote per topic and changelog, wall time per batch phase, the Kafka API calls it made (count, time,
 * errors) and the runtime's stats; BENCH_CPU_PROF=<dir> writes a V8 CPU profile per child;
 * BENCH_SIMULATE_SOURCE_CHANGELOG=1 drops the fk-join tickets store's changelog records, to estimate
 * what reusing the source topic as that store's changelog would save (not exactly-once as it stands).
 * The machine is shared: compare ratios and CPU µs/record within one run, repeat runs, never compare
 * absolute rates across runs.
 */
import { spawn } from 'node:child_process'
import { tracingChannel } from 'node:diagnostics_channel'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Admin, Consumer, Producer, protocolAPIsById } from '@platformatic/kafka'
import { endpointsFromEnv } from '../src/config/endpoints.ts'
import { KafkaRuntime } from '../src/runtime/kafka-runtime.ts'
import type { ProcessorTopology, SinkRecord, SourceRecord } from '../src/runtime/task.ts'
import { MemoryStateStore } from '../src/state/memory-store.ts'
import type { StateStore } from '../src/state/store.ts'
import { TopologyBuilder } from '../src/dsl/index.ts'

const brokers = [...endpointsFromEnv().kafkaBrokers]
const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000)
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 3)
const BATCH = Number(process.env.BENCH_BATCH ?? 1_000)
const CUSTOMERS = 10_000

interface Result {
  readonly variant: string
  readonly records: number
  readonly ms: number
  readonly cpuUs: number
  readonly peakRssMb: number
  /** RSS sampled every 250 ms during the catch-up: median and last sample (flat = bounded). */
  readonly medianRssMb: number
  readonly lastRssMb: number
  /** The aggregate variant: writes to the aggregate store during the run. */
  readonly storeWrites?: number
}

/** Measures one loop in this process: wall time, CPU and peak RSS until `done()` resolves. */
async function measure(variant: string, run: () => Promise<number>): Promise<Result> {
  const samples: number[] = []
  const sampler = setInterval(() => samples.push(process.memoryUsage.rss() / 1024 / 1024), 250)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const records = await run()
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  clearInterval(sampler)
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    variant,
    records,
    ms,
    cpuUs: cpu.user + cpu.system,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    medianRssMb: sorted[Math.floor(sorted.length / 2)] ?? 0,
    lastRssMb: samples.at(-1) ?? 0,
  }
}

async function rawLoop(input: string, output: string): Promise<number> {
  // Same fetch bound as the runtime (4 MiB per fetch), so the comparison is loop against loop.
  const consumer = new Consumer({
    groupId: `bench-raw-${randomUUID()}`,
    clientId: 'bench-raw',
    bootstrapBrokers: brokers,
    isolationLevel: 1,
    autocommit: false,
    maxWaitTime: 200,
    maxBytes: 4 * 1024 * 1024,
  })
  const producer = new Producer({ clientId: 'bench-raw-out', bootstrapBrokers: brokers, idempotent: true })
  const stream = await consumer.consume({
    topics: [input],
    mode: 'earliest',
    autocommit: false,
    highWaterMark: BATCH * 2,
  })
  let done = 0
  let batch: { topic: string; partition: number; key: Buffer; value: Buffer }[] = []
  let last: { commit(): unknown } | undefined
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return
    await producer.send({ messages: batch })
    await (last as { commit(): Promise<void> }).commit()
    done += batch.length
    batch = []
  }
  for await (const message of stream) {
    batch.push({ topic: output, partition: message.partition, key: message.key, value: message.value })
    last = message
    if (batch.length >= BATCH || done + batch.length >= RECORDS) await flush()
    if (done >= RECORDS) break
  }
  await flush()
  await stream.close()
  await consumer.close(true)
  await producer.close()
  return done
}

function passthroughTopology(applicationId: string, input: string, output: string): ProcessorTopology {
  return {
    applicationId,
    sourceTopics: [input],
    topics: [
      { name: input, role: 'source', config: {} },
      { name: output, role: 'sink', config: {} },
    ],
    storeNames: [],
    prefetchKeys: () => new Map(),
    async process(records: readonly SourceRecord[]): Promise<SinkRecord[]> {
      const out: SinkRecord[] = new Array(records.length)
      for (let i = 0; i < records.length; i++) {
        const r = records[i]
        out[i] = { topic: output, partition: r.partition, key: r.key, value: r.value }
      }
      return out
    },
  }
}

async function runtimeLoop(topology: ProcessorTopology, stores: Map<string, StateStore>): Promise<number> {
  const runtime = new KafkaRuntime(topology, {
    brokers,
    stores,
    batchMaxRecords: BATCH,
    sessionTimeoutMs: 10_000,
    fetchMaxWaitMs: 200,
  })
  const running = runtime.run()
  while (runtime.stats.records < RECORDS) await new Promise((r) => setTimeout(r, 20))
  runtime.stop()
  await running
  return runtime.stats.records
}

/** Runs until the runtime has seen `atLeast` records and then made no progress for 2 s; returns the time of the last progress. */
async function runtimeUntilIdle(
  topology: ProcessorTopology,
  stores: Map<string, StateStore>,
  atLeast: number,
): Promise<{ records: number; ms: number }> {
  const runtime = new KafkaRuntime(topology, {
    brokers,
    stores,
    batchMaxRecords: BATCH,
    sessionTimeoutMs: 10_000,
    fetchMaxWaitMs: 200,
    ...(process.env.BENCH_DETAIL ? { onBatchStage: spans.stage } : {}),
  })
  const t0 = performance.now()
  const running = runtime.run()
  let last = -1
  let lastAt = performance.now()
  for (;;) {
    await new Promise((r) => setTimeout(r, 50))
    const now = performance.now()
    if (runtime.stats.records !== last) {
      last = runtime.stats.records
      lastAt = now
    } else if (last >= atLeast && now - lastAt > 2_000) break
  }
  runtime.stop()
  await running
  if (process.env.BENCH_DETAIL) process.stderr.write(`runtime stats: ${JSON.stringify(runtime.stats)}\n`)
  return { records: runtime.stats.records, ms: lastAt - t0 }
}

/**
 * BENCH_DETAIL=1: counts what the topology reads and writes per topic (records, key+value bytes) and
 * the time spent in prefetch+process, and prints it to stderr when the child ends.
 */
/** BENCH_DETAIL: Kafka API calls of this process (count, total ms from request to response, errors by code). */
const apiCalls = (() => {
  const calls = new Map<string, { count: number; ms: number; errors: Map<string, number> }>()
  const started = new WeakMap<object, number>()
  if (process.env.BENCH_DETAIL) {
    const names = protocolAPIsById as Record<number, string>
    tracingChannel<string, { apiKey: number; error?: unknown }>('plt:kafka:connections:api').subscribe({
      start: (d) => void started.set(d, performance.now()),
      asyncStart: (d) => {
        const t0 = started.get(d)
        if (t0 === undefined || typeof d.apiKey !== 'number') return
        const name = names[d.apiKey] ?? String(d.apiKey)
        const entry = calls.get(name) ?? { count: 0, ms: 0, errors: new Map() }
        entry.count++
        entry.ms += performance.now() - t0
        if (d.error !== undefined) {
          const e = d.error as { apiId?: string; errors?: { apiId?: string }[]; message?: string }
          const code = e.apiId ?? e.errors?.[0]?.apiId ?? e.message ?? 'error'
          entry.errors.set(code, (entry.errors.get(code) ?? 0) + 1)
        }
        calls.set(name, entry)
      },
      end: () => {},
      asyncEnd: () => {},
      error: () => {},
    })
  }
  return {
    report: (): string =>
      [...calls]
        .sort((a, b) => b[1].ms - a[1].ms)
        .map(
          ([name, c]) =>
            `  ${name.padEnd(28)} ${String(c.count).padStart(7)} calls ${(c.ms / 1000).toFixed(1).padStart(6)} s ${[...c.errors].map(([k, v]) => `${k}×${v}`).join(' ')}`,
        )
        .join('\n'),
  }
})()

/** BENCH_DETAIL: wall time per batch phase, from the topology's calls and the runtime's batch stages. */
const spans = (() => {
  const totals = new Map<string, number>()
  let phase = 'fetch (read, restore, flush)'
  let at = performance.now()
  const enter = (next: string): void => {
    const now = performance.now()
    totals.set(phase, (totals.get(phase) ?? 0) + now - at)
    phase = next
    at = now
  }
  const names: Record<string, string> = {
    produced: 'add offsets + send offsets',
    'offsets-sent': 'end transaction',
    committed: 'fetch (read, restore, flush)',
  }
  return {
    enter,
    stage: (stage: string): void => enter(names[stage]),
    report: (): string =>
      [...totals].map(([p, ms]) => `  ${p.padEnd(40)} ${(ms / 1000).toFixed(1).padStart(6)} s`).join('\n'),
  }
})()

function detailed(topology: ProcessorTopology, stores: Map<string, StateStore>): ProcessorTopology {
  const read = new Map<string, { records: number; bytes: number }>()
  const written = new Map<string, { records: number; bytes: number }>()
  const count = (map: typeof read, topic: string, key: Buffer | string | null, value: Buffer | null): void => {
    const entry = map.get(topic) ?? { records: 0, bytes: 0 }
    entry.records++
    entry.bytes += (key?.length ?? 0) + (value?.length ?? 0)
    map.set(topic, entry)
  }
  let batches = 0
  let processMs = 0
  for (const store of stores.values()) {
    const drain = store.drainChangelog.bind(store)
    store.drainChangelog = () => {
      const records = drain()
      for (const r of records) count(written, `${store.name} (changelog)`, r.key, r.value)
      return records
    }
  }
  process.on('exit', () => {
    const table = (map: typeof read): string =>
      [...map]
        .map(
          ([t, { records, bytes }]) =>
            `  ${t.padEnd(60)} ${String(records).padStart(9)} records ${(bytes / records).toFixed(0).padStart(5)} B/record`,
        )
        .join('\n')
    process.stderr.write(
      `batches ${batches}, ${(processMs / 1000).toFixed(1)} s in prefetchKeys+process\nwall time by phase:\n${spans.report()}\nKafka API calls:\n${apiCalls.report()}\nread:\n${table(read)}\nwritten:\n${table(written)}\n`,
    )
  })
  return {
    ...topology,
    prefetchKeys(records) {
      spans.enter('prefetchKeys + prefetch + verify stores')
      const t0 = performance.now()
      for (const r of records) count(read, r.topic, r.key, r.value)
      const keys = topology.prefetchKeys(records)
      processMs += performance.now() - t0
      return keys
    },
    async process(records, s, now) {
      spans.enter('process')
      const t0 = performance.now()
      const out = await topology.process(records, s, now)
      processMs += performance.now() - t0
      spans.enter('drain changelog + begin + produce')
      batches++
      for (const r of out) count(written, r.topic, r.key, r.value)
      return out
    },
  }
}

/**
 * A grouped topology (aggregate, collect) run until idle: tickets plus their group-by repartition
 * records, with the writes (put + delete) of the grouped store counted to report writes per ticket.
 */
async function measureGrouped(
  variant: string,
  builder: TopologyBuilder,
  output: string,
  store: string,
): Promise<Result> {
  const compiled = builder.build().compile({ partitions: PARTITIONS, sinkPartitions: { [output]: PARTITIONS } })
  const stores = new Map<string, StateStore>(compiled.storeNames.map((n) => [n, new MemoryStateStore(n)]))
  const grouped = stores.get(store)!
  let writes = 0
  const put = grouped.put.bind(grouped)
  const del = grouped.delete.bind(grouped)
  grouped.put = (partition, key, value) => (writes++, put(partition, key, value))
  grouped.delete = (partition, key) => (writes++, del(partition, key))
  const topology = process.env.BENCH_DETAIL ? detailed(compiled, stores) : compiled
  let ms = 0
  const measured = await measure(variant, async () => {
    const r = await runtimeUntilIdle(topology, stores, 2 * RECORDS)
    ms = r.ms
    return RECORDS
  })
  return { ...measured, ms, storeWrites: writes }
}

async function child(variant: string, input: string, output: string): Promise<void> {
  let result: Result
  if (variant === 'raw') result = await measure(variant, () => rawLoop(input, output))
  else if (variant === 'passthrough')
    result = await measure(variant, () =>
      runtimeLoop(passthroughTopology(`bench-pt-${randomUUID().slice(0, 8)}`, input, output), new Map()),
    )
  else if (variant === 'fk-join') {
    const customers = process.argv[6]
    const builder = new TopologyBuilder({ applicationId: `bench-fk-${randomUUID().slice(0, 8)}` })
    const customerTable = builder.table<{ tier: string }>(customers, { name: 'customers' })
    builder
      .table<{ n: number; c: string }>(input, { name: 'tickets' })
      .join(customerTable, {
        name: 'join-customers',
        type: 'left',
        foreignKey: (t) => t.c,
        joiner: (t, c) => ({ n: t.n, tier: c?.tier ?? null }),
      })
      .to(output)
    const compiled = builder.build().compile({ partitions: PARTITIONS, sinkPartitions: { [output]: PARTITIONS } })
    const stores = new Map<string, StateStore>(compiled.storeNames.map((n) => [n, new MemoryStateStore(n)]))
    if (process.env.BENCH_SIMULATE_SOURCE_CHANGELOG) {
      // What reusing the tickets topic as the tickets store's changelog would save in steady state (needs a runtime change; see docs).
      const tickets = stores.get('tickets')!
      const drain = tickets.drainChangelog.bind(tickets)
      tickets.drainChangelog = () => (drain(), [])
    }
    const topology = process.env.BENCH_DETAIL ? detailed(compiled, stores) : compiled
    let ms = 0
    const measured = await measure(variant, async () => {
      const r = await runtimeUntilIdle(topology, stores, RECORDS + CUSTOMERS)
      ms = r.ms
      return RECORDS
    })
    // Throughput counts input tickets over the time to the last progress (the idle wait excluded).
    result = { ...measured, ms }
  } else if (variant === 'aggregate') {
    const builder = new TopologyBuilder({ applicationId: `bench-agg-${randomUUID().slice(0, 8)}` })
    builder
      .table<{ n: number; c: string }>(input, { name: 'tickets' })
      .groupBy(
        (t) => t.c,
        (t) => t.n,
      )
      .aggregate(
        () => ({ tickets: 0, sum: 0 }),
        (a: { tickets: number; sum: number }, n) => ({ tickets: a.tickets + 1, sum: a.sum + n }),
        (a, n) => ({ tickets: a.tickets - 1, sum: a.sum - n }),
        { name: 'per-customer' },
      )
      .to(output)
    result = await measureGrouped(variant, builder, output, 'per-customer')
  } else if (variant === 'collect-hot') {
    const builder = new TopologyBuilder({ applicationId: `bench-agg-${randomUUID().slice(0, 8)}` })
    builder
      .table<{ n: number; c: string }>(input, { name: 'tickets' })
      .groupBy(
        () => 'hot',
        (t) => t.n,
      )
      .collect({ name: 'hot-parent', orderBy: (n) => n, descending: true, limit: 20 })
      .to(output)
    result = await measureGrouped(variant, builder, output, 'hot-parent')
  } else {
    const builder = new TopologyBuilder({ applicationId: `bench-dsl-${randomUUID().slice(0, 8)}` })
    builder.table(input, { name: 'input' }).to(output)
    const topology = builder.build().compile({ partitions: PARTITIONS, sinkPartitions: { [output]: PARTITIONS } })
    result = await measure(variant, () => runtimeLoop(topology, new Map([['input', new MemoryStateStore('input')]])))
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

function runChild(variant: string, input: string, output: string, customers: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    // BENCH_CPU_PROF=<dir>: write a V8 CPU profile of each child there (node --cpu-prof).
    const profile = process.env.BENCH_CPU_PROF
      ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF, '--cpu-prof-name', `${variant}.cpuprofile`]
      : []
    const proc = spawn(
      process.execPath,
      [...profile, fileURLToPath(import.meta.url), 'child', variant, input, output, customers],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let out = ''
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()))
    proc.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as Result)
        : reject(new Error(`${variant} exited ${code}`)),
    )
  })
}

async function preload(input: string, customers: string): Promise<number> {
  const producer = new Producer({ clientId: 'bench-preload', bootstrapBrokers: brokers, idempotent: true })
  const pad = 'x'.repeat(56)
  const t0 = performance.now()
  for (let i = 0; i < CUSTOMERS; i += 5_000) {
    await producer.send({
      messages: Array.from({ length: 5_000 }, (_, j) => ({
        topic: customers,
        key: Buffer.from(`c${i + j}`),
        value: Buffer.from(`{"tier":"${(i + j) % 3 ? 'basic' : 'gold'}"}`),
      })),
    })
  }
  for (let sent = 0; sent < RECORDS;) {
    const n = Math.min(5_000, RECORDS - sent)
    const messages = []
    for (let i = 0; i < n; i++, sent++)
      messages.push({
        topic: input,
        key: Buffer.from(`key-${sent % 50_000}`),
        value: Buffer.from(`{"n":${sent},"c":"c${sent % CUSTOMERS}","pad":"${pad}"}`),
      })
    await producer.send({ messages })
  }
  await producer.close()
  return performance.now() - t0
}

async function main(): Promise<void> {
  const id = randomUUID().slice(0, 8)
  const input = `bench-${id}-in`
  const customers = `bench-${id}-customers`
  const outputs = {
    raw: `bench-${id}-raw`,
    passthrough: `bench-${id}-pt`,
    'dsl-table': `bench-${id}-dsl`,
    'fk-join': `bench-${id}-fk`,
    aggregate: `bench-${id}-agg`,
    'collect-hot': `bench-${id}-hot`,
  }
  const admin = new Admin({ clientId: 'bench-admin', bootstrapBrokers: brokers })
  await admin.createTopics({
    topics: [input, customers, ...Object.values(outputs)],
    partitions: PARTITIONS,
    replicas: 1,
  })
  try {
    const preloadMs = await preload(input, customers)
    console.log(
      `backlog: ${RECORDS} records (~${(RECORDS * 100) / 1e6} MB) in ${PARTITIONS} partitions, loaded in ${(preloadMs / 1000).toFixed(1)} s; batch ${BATCH} records`,
    )
    const results: Result[] = []
    const variants = (process.env.BENCH_VARIANTS ?? 'raw,passthrough,dsl-table,fk-join,aggregate,collect-hot').split(
      ',',
    ) as (keyof typeof outputs)[]
    for (const variant of variants) {
      const r = await runChild(variant, input, outputs[variant], customers)
      results.push(r)
    }
    const raw = results[0]
    const rate = (r: Result): number => (r.records / r.ms) * 1000
    console.log('variant       records   events/s   CPU µs/record   RSS MB peak / median / last   ratio vs raw')
    for (const r of results) {
      const rss = `${r.peakRssMb.toFixed(0)} / ${r.medianRssMb.toFixed(0)} / ${r.lastRssMb.toFixed(0)}`
      console.log(
        `${r.variant.padEnd(12)} ${String(r.records).padStart(8)} ${rate(r).toFixed(0).padStart(10)} ${(r.cpuUs / r.records).toFixed(2).padStart(15)} ${rss.padStart(29)} ${(rate(r) / rate(raw)).toFixed(2).padStart(14)}`,
      )
    }
    for (const r of results)
      if (r.storeWrites !== undefined)
        console.log(
          `${r.variant}: ${r.storeWrites} ${r.variant === 'collect-hot' ? 'collect (one parent)' : 'aggregate'} store writes for ${r.records} input tickets (${(r.storeWrites / r.records).toFixed(2)} per ticket)`,
        )
  } finally {
    const internal = (await admin.listTopics()).filter(
      (t) =>
        t.startsWith('bench-pt-') ||
        t.startsWith('bench-dsl-') ||
        t.startsWith('bench-fk-') ||
        t.startsWith('bench-agg-'),
    )
    await admin.deleteTopics({ topics: [input, customers, ...Object.values(outputs), ...internal] }).catch(() => {})
    await admin.close()
  }
}

if (process.argv[2] === 'child') await child(process.argv[3], process.argv[4], process.argv[5])
else await main()
