/**
 * The topology's own CPU per change (issue 18): the support-copilot reference topology on the test
 * driver (in-memory stores and embedding cache, the hashing embedder, chunk events in Avro through the
 * schema registry), fed the changes `bench/freshness.ts` sends: direct updates (a ticket's body
 * changes: one chunk) and re-triggers (a customer's tier changes: its tickets' chunks). CPU is
 * measured inside the compiled `process()` only (what freshness' "topology" share is, minus its
 * Redis round trips), per change, after a warm-up pass over every ticket and customer.
 *
 *   node bench/topology-cpu.ts        # BENCH_CUSTOMERS=100 BENCH_TICKETS_PER_CUSTOMER=5 BENCH_ROUNDS=3
 *
 * BENCH_DIGEST=1 also prints a sha256 of every record the topology produced (topics, partitions,
 * keys, values, headers, timestamps): two code versions that print the same digest produce the same
 * bytes for this input. The figures are one warm process's; the machine is shared: compare base and
 * new alternating, with the load average printed on the last line.
 */
import { createHash } from 'node:crypto'
import { loadavg } from 'node:os'
import { chunkEventAvroCodec } from '../src/serde/chunk-event-codec.ts'
import type { TailServices } from '../src/config/rag-services.ts'
import { endpointsFromEnv } from '../src/config/endpoints.ts'
import { MemoryRagServices, TopologyTestDriver, type TestInputRecord } from '../src/testing/index.ts'
import { supportCopilot } from '../topologies/support-copilot.ts'
import { customerRow, ticketRow } from './_support-rows.ts'

const CUSTOMERS = Number(process.env.BENCH_CUSTOMERS ?? 100)
const PER_CUSTOMER = Number(process.env.BENCH_TICKETS_PER_CUSTOMER ?? 5)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const PREFIX = 'bench-topology-cpu'
const CHUNK_TOPIC = `rag.chunks.${PREFIX}`
const TICKETS = CUSTOMERS * PER_CUSTOMER
const T0 = 1_780_000_000_000

/** The freshness bench's Debezium JSON (schemaless) change of a row. */
function change(table: 'tickets' | 'customers', row: Record<string, unknown>, tsMs: number): TestInputRecord {
  return {
    topic: `${PREFIX}.public.${table}`,
    key: JSON.stringify({ id: row.id }),
    value: JSON.stringify({
      before: null,
      after: row,
      source: { ts_ms: tsMs, schema: 'public', table },
      op: 'u',
      ts_ms: tsMs,
    }),
    timestamp: BigInt(tsMs + 3),
  }
}
const customer = (id: number, version: number) =>
  change('customers', customerRow(id, `tier-${version}`), T0 + version * 1000 + id)
const ticket = (id: number, version: number) =>
  change('tickets', ticketRow(id, version, CUSTOMERS), T0 + version * 1000 + id)

const memory = new MemoryRagServices()
const codec = await chunkEventAvroCodec({ registryUrl: endpointsFromEnv().schemaRegistryUrl, topic: CHUNK_TOPIC })
const services: TailServices = {
  embedder: memory.embedder,
  embeddingCache: memory.embeddingCache,
  chunkEvents: codec,
  deletionRequests: (topic) => memory.deletionRequests(topic),
  auditEvents: (topic) => memory.auditEvents(topic),
  open: async () => {},
  close: () => memory.close(),
}
const driver = new TopologyTestDriver(supportCopilot({ prefix: PREFIX, chunkTopic: CHUNK_TOPIC }), {
  partitions: 2,
  services,
  startTime: T0,
})
const cpuUs = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}
let insideUs = 0
const process_ = driver.processor.process.bind(driver.processor)
;(driver.processor as { process: typeof process_ }).process = async (...args) => {
  const begun = cpuUs()
  try {
    return await process_(...args)
  } finally {
    insideUs += cpuUs() - begun
  }
}

// Backfill: every customer, then every ticket (version 0), then one warm-up pass of each kind.
for (let id = 0; id < CUSTOMERS; id++) await driver.pipe(...args(customer(id, 0)))
for (let id = 0; id < TICKETS; id++) await driver.pipe(...args(ticket(id, 0)))
function args(r: TestInputRecord): Parameters<TopologyTestDriver['pipe']> {
  return [r.topic, r.key, r.value, { timestamp: r.timestamp }]
}
let version = 1
const measure = async (kind: 'direct' | 're-trigger', n: number) => {
  const before = insideUs
  for (let i = 0; i < n; i++)
    await driver.pipe(...args(kind === 'direct' ? ticket(i % TICKETS, version) : customer(i % CUSTOMERS, version)))
  version++
  return (insideUs - before) / n / 1000
}
await measure('direct', TICKETS)
await measure('re-trigger', CUSTOMERS)
const direct: number[] = []
const retrigger: number[] = []
for (let round = 0; round < ROUNDS; round++) {
  direct.push(await measure('direct', TICKETS))
  retrigger.push(await measure('re-trigger', CUSTOMERS))
}
const fmt = (xs: number[]) => xs.map((x) => x.toFixed(3)).join(' ')
process.stdout.write(
  `topology CPU inside process() per change, ms (${ROUNDS} rounds): direct ${fmt(direct)} | re-trigger ×${PER_CUSTOMER} ${fmt(retrigger)}\n`,
)
if (process.env.BENCH_DIGEST) {
  const hash = createHash('sha256')
  const dead = driver.readDeadLetters()
  for (const topic of [...driver.processor.topics.map((t) => t.name), CHUNK_TOPIC]) {
    for (const r of driver.allOutput(topic)) {
      hash.update(`${r.topic}|${r.partition}|${r.offset}|${r.timestamp}|${r.appendedAt}|`)
      hash.update(r.rawKey ?? Buffer.from('<null>'))
      hash.update('|')
      hash.update(r.rawValue ?? Buffer.from('<null>'))
      hash.update(JSON.stringify(Object.entries(r.headers).sort()))
    }
  }
  process.stdout.write(`outputs digest ${hash.digest('hex')} (dead letters: ${dead.length})\n`)
}
await services.close()
process.stdout.write(
  `machine load average (1/5/15 min): ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ')}\n`,
)
