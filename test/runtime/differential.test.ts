// Seeded randomized differential test: random left/right changes (inserts, updates, foreign-key
// moves, deletes, tombstones; some right rows on a partition their key does not hash to) are produced
// in bursts that mix both sides while two Kafka runtimes (inner and left FK join, with filter and
// mapValues on both inputs and on the result; exactly once, Redis state stores) run. After each phase
// the runtimes' committed output (read_committed) read as a table — last value per key, and which
// keys are absent — must equal the test driver's, fed the same records in the same per-partition
// order, and the join recomputed from the final input tables.
//
// Replay a failure with RAGSTREAM_DIFF_SEED=<seed> (every assertion message names the seed).
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { checkKafka, checkRedis } from '../../src/config/services.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { SourceRecord } from '../../src/runtime/task.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { TopologyTestDriver, type TestInputRecord } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import type { Topology } from '../../src/topology/topology.ts'
import { deleteRedisKeys } from '../support/kafka-fk-runner.ts'
import { endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd, waitCaughtUp } from '../support/topic-offsets.ts'
import { seededRandom } from '../support/seeded-random.ts'

const PARTITIONS = 3
const PHASES = 3
const BURSTS_PER_PHASE = 4
const ORDER_KEYS = Array.from({ length: 40 }, (_, i) => `o${i}`)
const PRODUCT_KEYS = Array.from({ length: 8 }, (_, i) => `p${i}`)
const SEQ_HEADER = 'diff-seq'

interface Order {
  readonly product: string | null
  readonly qty: number
}
interface Product {
  readonly name: string
  readonly price: number
  readonly hidden: boolean
}

type JoinType = 'inner' | 'left'

/** orders (qty > 0, mapped) ⋈ products (not hidden, mapped), then a mapValues on the result. */
function differentialTopology(
  type: JoinType,
  applicationId: string,
  orders: string,
  products: string,
  output: string,
): Topology {
  const b = new TopologyBuilder({ applicationId })
  const productView = b
    .table<Product>(products, { name: 'products' })
    .filter((p) => !p.hidden, { name: 'visible-products' })
    .mapValues((p) => ({ label: p.name.toUpperCase(), price: p.price }), { name: 'product-view' })
  const orderView = b
    .table<Order>(orders, { name: 'orders' })
    .filter((o) => o.qty > 0, { name: 'positive-qty' })
    .mapValues((o) => ({ product: o.product, qty: o.qty, bulk: o.qty >= 5 }), { name: 'order-view' })
  const joined =
    type === 'inner'
      ? orderView.join(productView, {
          name: 'join-products',
          foreignKey: (o) => o.product,
          joiner: (o, p) => ({ ...o, label: p.label, price: p.price as number | null }),
        })
      : orderView.join(productView, {
          name: 'join-products',
          type: 'left',
          foreignKey: (o) => o.product,
          joiner: (o, p) => ({ ...o, label: p?.label ?? null, price: p?.price ?? null }),
        })
  joined
    .mapValues((d) => ({ ...d, total: d.price === null ? null : d.price * d.qty }), { name: 'totals' })
    .to(output, { name: 'order-totals' })
  return b.build()
}

/** The join recomputed from the final input tables: the oracle independent of both runners. */
function recomputed(
  type: JoinType,
  orders: ReadonlyMap<string, Order>,
  products: ReadonlyMap<string, Product>,
): Map<string, unknown> {
  const out = new Map<string, unknown>()
  for (const [key, o] of orders) {
    if (o.qty <= 0) continue
    const p = o.product === null ? undefined : products.get(o.product)
    const visible = p !== undefined && !p.hidden ? { label: p.name.toUpperCase(), price: p.price } : undefined
    if (visible === undefined && type === 'inner') continue
    const price = visible?.price ?? null
    out.set(key, {
      product: o.product,
      qty: o.qty,
      bulk: o.qty >= 5,
      label: visible?.label ?? null,
      price,
      total: price === null ? null : price * o.qty,
    })
  }
  return out
}

interface Change {
  readonly topic: string
  readonly key: string
  readonly value: Order | Product | null
  readonly partition: number
}

function table(records: readonly SourceRecord[]): Map<string, unknown> {
  const out = new Map<string, unknown>()
  for (const r of records) {
    const key = r.key!.toString('utf8')
    if (r.value === null) out.delete(key)
    else out.set(key, JSON.parse(r.value.toString('utf8')))
  }
  return out
}

const sorted = (m: ReadonlyMap<string, unknown>): Map<string, unknown> =>
  new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

test(
  "differential: the Kafka runtime's committed FK-join output (inner and left) equals the test driver's on the same seeded random input",
  { timeout: 110_000 },
  async (t) => {
    await checkKafka(endpoints)
    await checkRedis(endpoints.redisUrl)
    const seed = Number(process.env.RAGSTREAM_DIFF_SEED ?? randomInt(1, 2 ** 31))
    t.diagnostic(`seed ${seed} (replay: RAGSTREAM_DIFF_SEED=${seed})`)
    const random = seededRandom(seed)
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]

    const id = uniqueName('diff')
    const ordersTopic = `${id}-orders`
    const productsTopic = `${id}-products`
    const admin = new Admin({ clientId: uniqueName('diff-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    const producer = new Producer({
      clientId: uniqueName('diff-input'),
      bootstrapBrokers: [...endpoints.kafkaBrokers],
      idempotent: true,
    })
    const cleanup: (() => Promise<void>)[] = []
    t.after(async () => {
      for (const step of cleanup.reverse()) await step().catch(() => {})
      await producer.close().catch(() => {})
      await admin.deleteTopics({ topics: [ordersTopic, productsTopic] }).catch(() => {})
      await admin.close()
    })
    await admin.createTopics({ topics: [ordersTopic, productsTopic], partitions: PARTITIONS, replicas: 1 })

    const runs = (['inner', 'left'] as const).map((type) => {
      const applicationId = `${id}-${type}`
      const output = `${applicationId}-out`
      const topology = differentialTopology(type, applicationId, ordersTopic, productsTopic, output)
      const processor = topology.compile({ partitions: PARTITIONS, sinkPartitions: { [output]: PARTITIONS } })
      return { type, applicationId, output, topology, processor, events: [] as RuntimeEvent[] }
    })
    await admin.createTopics({ topics: runs.map((r) => r.output), partitions: PARTITIONS, replicas: 1 })
    for (let attempt = 0; ; attempt++) {
      const listed = new Set(await admin.listTopics())
      if ([ordersTopic, productsTopic, ...runs.map((r) => r.output)].every((name) => listed.has(name))) break
      assert.ok(attempt < 100, 'created topics are not listed by the broker')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }

    const runtimes = runs.map((run) => {
      const backend = new RedisStateBackend({
        applicationId: run.applicationId,
        target: { kind: 'single', url: endpoints.redisUrl },
      })
      const runtime = new KafkaRuntime(run.processor, {
        brokers: endpoints.kafkaBrokers,
        stores: new Map(run.processor.storeNames.map((name) => [name, backend.store(name)])),
        instanceId: 'diff',
        sessionTimeoutMs: 6_000,
        transactionTimeoutMs: 20_000,
        // Small batches: many transactions, and batches that mix orders, products and repartition records.
        batchMaxRecords: 40,
        fetchMaxWaitMs: 50,
        onEvent: (e) => run.events.push(e),
      })
      let failure: unknown
      const running = runtime.run().catch((error: unknown) => {
        failure = error
      })
      cleanup.push(async () => {
        runtime.stop()
        await running
        await backend.close().catch(() => {})
        await admin
          .deleteTopics({
            topics: [
              run.output,
              ...run.processor.topics.filter((x) => x.role !== 'source' && x.role !== 'sink').map((x) => x.name),
            ],
          })
          .catch(() => {})
        await admin.deleteGroups({ groups: [run.applicationId] }).catch(() => {})
        await deleteRedisKeys(endpoints.redisUrl, run.applicationId)
      })
      return { run, runtime, failed: () => failure }
    })

    // Some products live on a partition their key does not hash to (as with Debezium JSON keys): stable per key.
    const productPartition = new Map(
      PRODUCT_KEYS.map((k) => [
        k,
        random() < 0.3 ? Math.floor(random() * PARTITIONS) : partitionForString(k, PARTITIONS),
      ]),
    )
    const orders = new Map<string, Order>()
    const products = new Map<string, Product>()
    const nextChange = (step: number): Change => {
      if (random() < 0.65) {
        const key = pick(ORDER_KEYS)
        const roll = random()
        const existing = orders.get(key)
        let value: Order | null
        if (roll < 0.12)
          value = null // delete (a tombstone also for keys that never existed)
        else if (roll < 0.3 && existing !== undefined)
          value = { product: existing.product, qty: Math.floor(random() * 9) } // update, same foreign key
        else
          value = {
            product: random() < 0.08 ? null : pick([...PRODUCT_KEYS, 'nowhere']),
            qty: Math.floor(random() * 9),
          } // insert or foreign-key move
        if (value === null) orders.delete(key)
        else orders.set(key, value)
        return { topic: ordersTopic, key, value, partition: partitionForString(key, PARTITIONS) }
      }
      const key = pick(PRODUCT_KEYS)
      const value =
        random() < 0.2
          ? null
          : { name: `${key}-v${step}`, price: 1 + Math.floor(random() * 50), hidden: random() < 0.15 }
      if (value === null) products.delete(key)
      else products.set(key, value)
      return { topic: productsTopic, key, value, partition: productPartition.get(key)! }
    }

    const driverRuns = runs.map((run) => ({
      run,
      driver: new TopologyTestDriver(run.topology, { partitions: PARTITIONS }),
    }))
    t.after(async () => {
      for (const { driver } of driverRuns) await driver.close()
    })
    const bursts: Change[][] = []
    let seq = 0
    for (let phase = 1; phase <= PHASES; phase++) {
      // Bursts while the runtimes run: each burst is one produce request mixing both sides.
      for (let b = 0; b < BURSTS_PER_PHASE; b++) {
        const burst = Array.from({ length: 40 + Math.floor(random() * 120) }, () => nextChange(seq++))
        bursts.push(burst)
        await producer.send({
          messages: burst.map((c, i) => ({
            topic: c.topic,
            partition: c.partition,
            key: Buffer.from(c.key, 'utf8'),
            ...(c.value === null ? {} : { value: Buffer.from(JSON.stringify(c.value), 'utf8') }),
            headers: new Map([[Buffer.from(SEQ_HEADER), Buffer.from(String(seq - burst.length + i))]]),
          })),
        })
        await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 400)))
      }

      for (const { run, failed } of runtimes) {
        await Promise.race([
          waitCaughtUp(
            admin,
            PARTITIONS,
            run.applicationId,
            [ordersTopic, productsTopic],
            run.processor.topics.filter((x) => x.role === 'repartition').map((x) => x.name),
            60_000,
            run.events,
          ),
          new Promise((_, reject) => {
            const timer = setInterval(() => {
              if (failed() === undefined) return
              clearInterval(timer)
              reject(new Error(`seed ${seed}: the ${run.type} runtime failed: ${(failed() as Error).message}`))
            }, 200)
            timer.unref()
          }),
        ])
      }

      // The input as the broker holds it: per partition in the order it was generated.
      const input = await readToEnd(admin, PARTITIONS, [ordersTopic, productsTopic])
      assert.equal(input.length, seq, `seed ${seed}: every generated change is in the input topics`)
      const seqOf = (r: SourceRecord): number => Number(r.headers.get(SEQ_HEADER)!.toString())
      const generated = bursts.flat()
      for (const r of input) {
        const change = generated[seqOf(r)]
        assert.deepEqual(
          [r.topic, r.partition, r.key!.toString()],
          [change.topic, change.partition, change.key],
          `seed ${seed}: record ${seqOf(r)}`,
        )
      }
      const byPartition = new Map<string, number[]>()
      for (const r of input)
        byPartition.set(`${r.topic}:${r.partition}`, [
          ...(byPartition.get(`${r.topic}:${r.partition}`) ?? []),
          seqOf(r),
        ])
      for (const [tp, seqs] of byPartition)
        assert.deepEqual(
          seqs,
          [...seqs].sort((a, b) => a - b),
          `seed ${seed}: ${tp} holds its records in generation order`,
        )

      // The driver, fed this phase's bursts as batches (each mixing both sides), in that same order.
      const fromSeq = bursts.slice(0, (phase - 1) * BURSTS_PER_PHASE).flat().length
      const bySeq = new Map(input.map((r) => [seqOf(r), r]))
      let at = fromSeq
      for (const burst of bursts.slice((phase - 1) * BURSTS_PER_PHASE)) {
        const batch: TestInputRecord[] = burst.map((_, i) => {
          const r = bySeq.get(at + i)!
          return { topic: r.topic, key: r.key, value: r.value, partition: r.partition, timestamp: r.timestamp }
        })
        at += burst.length
        for (const { driver } of driverRuns) await driver.pipeBatch(batch)
      }

      for (const { run, driver } of driverRuns) {
        const committed = await readToEnd(admin, PARTITIONS, [run.output])
        const actual = table(committed)
        const expected = driver.readTable(run.output)
        const where = `seed ${seed}, phase ${phase}, ${run.type} join`
        const differing = [...new Set([...actual.keys(), ...expected.keys()])].filter(
          (k) => JSON.stringify(actual.get(k)) !== JSON.stringify(expected.get(k)),
        )
        assert.deepEqual(
          differing
            .slice(0, 5)
            .map((k) => ({ key: k, runtime: actual.get(k) ?? '(absent)', driver: expected.get(k) ?? '(absent)' })),
          [],
          `${where}: ${differing.length} of ${expected.size} keys differ between the runtime and the driver`,
        )
        assert.deepEqual(sorted(actual), sorted(expected), where)
        assert.deepEqual(
          sorted(expected),
          sorted(recomputed(run.type, orders, products)),
          `${where}: the driver against the recomputed join`,
        )
        for (const r of committed)
          assert.equal(
            r.partition,
            partitionForString(r.key!.toString(), PARTITIONS),
            `${where}: output key ${r.key} on its own partition`,
          )
        assert.deepEqual(
          await readToEnd(admin, PARTITIONS, [run.processor.topics.find((x) => x.role === 'dead-letter')!.name]),
          [],
          `${where}: runtime dead letters`,
        )
        assert.deepEqual(driver.readDeadLetters(), [], `${where}: driver dead letters`)
        t.diagnostic(
          `${where}: ${seq} input records, ${committed.length} committed output records, ${actual.size} live keys`,
        )
      }
    }
    for (const { run, runtime } of runtimes)
      t.diagnostic(`${run.type}: ${runtime.stats.batches} transactions, ${runtime.stats.aborts} aborted`)
  },
)
