// What a TRUNCATE costs a CDC table, against its baseline in the same run: the same rows deleted one
// `op=d` each. A truncate takes three hops (reset to every partition, a listing and one row delete
// per row, a done record that counts and audits: src/operators/table-reset.ts); the deletes take one.
//   node bench/table-reset.ts        (or: npm run bench -- table-reset)   nothing running needed
// In-memory test driver, 4 partitions, BENCH_RESET_N rows (default 20,000) of ~100 bytes. Reports the
// CPU time (user+system, the median of 3 runs on fresh drivers; wall time swings with a shared
// machine's load) of the truncate with and without an audit topic and of the deletes, the ratios,
// and the audit events written (one per partition) with the rows they count.
import { DebeziumDecoder } from '../src/cdc/debezium.ts'
import { cdcTableDecoder } from '../src/cdc/table-decoder.ts'
import { TopologyBuilder } from '../src/dsl/index.ts'
import type { AuditEventValue } from '../src/governance/audit.ts'
import { TopologyTestDriver, type TestInputRecord } from '../src/testing/index.ts'

const N = Number(process.env.BENCH_RESET_N ?? 20_000)
const PARTITIONS = 4
const TOPIC = 'db.public.items'

const envelope = (op: 'c' | 'd' | 't', lsn: number, id: number | null) => ({
  before: op === 'd' ? { id, name: `item ${id}` } : null,
  after: op === 'c' ? { id, name: `item ${id}`, note: 'x'.repeat(60) } : null,
  source: { ts_ms: lsn, lsn, schema: 'public', table: 'items', snapshot: 'false' },
  op,
  ts_ms: lsn,
})

async function driverWith(rows: number, audit: boolean): Promise<TopologyTestDriver> {
  const b = new TopologyBuilder({ applicationId: 'bench-reset' })
  b.cdcTable<Record<string, unknown>>(TOPIC, {
    name: 'items',
    ...cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' })),
    ...(audit ? { audit: { topic: 'bench.audit' } } : {}),
  })
    .mapValues((row) => ({ id: row.id }))
    .to('bench.out')
  const driver = new TopologyTestDriver(b.build(), { partitions: PARTITIONS })
  const batch: TestInputRecord[] = []
  for (let id = 1; id <= rows; id++)
    batch.push({ topic: TOPIC, key: JSON.stringify({ id }), value: envelope('c', 1_000 + id, id) })
  for (let i = 0; i < batch.length; i += 1_000) await driver.pipeBatch(batch.slice(i, i + 1_000))
  driver.readOutput('bench.out')
  return driver
}

/** CPU milliseconds (user+system) of `fn`. */
async function cpuMs(fn: () => Promise<void>): Promise<number> {
  globalThis.gc?.()
  const start = process.cpuUsage()
  await fn()
  const used = process.cpuUsage(start)
  return (used.user + used.system) / 1000
}

const remaining = (driver: TopologyTestDriver) => driver.readTable('bench.out').size
const RUNS = 3
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function measure(run: () => Promise<number>): Promise<number> {
  const runs: number[] = []
  for (let i = 0; i < RUNS; i++) runs.push(await run())
  return median(runs)
}

// Baseline: N deletes, in batches of 1,000 like the inserts.
const deletesMs = await measure(async () => {
  const driver = await driverWith(N, false)
  const ms = await cpuMs(async () => {
    for (let i = 0; i < N; i += 1_000) {
      const batch: TestInputRecord[] = []
      for (let id = i + 1; id <= Math.min(N, i + 1_000); id++)
        batch.push({ topic: TOPIC, key: JSON.stringify({ id }), value: envelope('d', 10_000_000 + id, id) })
      await driver.pipeBatch(batch)
    }
  })
  if (remaining(driver) !== 0) throw new Error('the deletes left rows')
  return ms
})

let events: AuditEventValue[] = []
const truncate = (audit: boolean) =>
  measure(async () => {
    const driver = await driverWith(N, audit)
    const ms = await cpuMs(() => driver.pipe(TOPIC, null, envelope('t', 10_000_000, null)))
    if (remaining(driver) !== 0) throw new Error('the truncate left rows')
    if (audit) events = driver.readOutput('bench.audit').map((r) => r.value as AuditEventValue)
    return ms
  })
const plainMs = await truncate(false)
const auditedMs = await truncate(true)
const counted = events.reduce((n, e) => n + e.counts.rows_removed, 0)

const us = (ms: number) => ((ms * 1000) / N).toFixed(1)
console.log(`table-reset: ${N} rows on ${PARTITIONS} partitions (test driver, in memory; CPU ms, median of ${RUNS})`)
console.log(`  ${N} op=d deletes (baseline)    ${deletesMs.toFixed(0).padStart(6)} ms  ${us(deletesMs)} µs/row`)
console.log(
  `  TRUNCATE, no audit topic        ${plainMs.toFixed(0).padStart(6)} ms  ${us(plainMs)} µs/row  ${(plainMs / deletesMs).toFixed(2)}x the deletes`,
)
console.log(
  `  TRUNCATE, audited               ${auditedMs.toFixed(0).padStart(6)} ms  ${us(auditedMs)} µs/row  ${(auditedMs / deletesMs).toFixed(2)}x the deletes, ${(auditedMs / plainMs).toFixed(2)}x unaudited`,
)
console.log(`  audit events: ${events.length} (one per partition), rows_removed summed: ${counted}`)
