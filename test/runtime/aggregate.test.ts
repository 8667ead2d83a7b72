// Differential test of groupBy/aggregate on the Kafka runtime: seeded change streams (children moving
// between parents, child deletes, a hot parent with thousands of children, whole parents emptied)
// through two Kafka runtime instances of one application, each its own process (exactly once, Redis
// stores; one SIGKILLed inside an open transaction mid-way, so the other takes over its partitions and
// restores their stores) give the same committed final tables as the test driver fed the same
// records, and both equal the aggregates computed directly from the final child rows.
//
// Replay a failure with RAGSTREAM_AGG_SEED=<seed>.
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { checkKafka, checkRedis } from '../../src/config/services.ts'
import type { RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { SourceRecord } from '../../src/runtime/task.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import { deleteRedisKeys } from '../support/kafka-fk-runner.ts'
import { COLLECT_LIMIT, reviewAggregates, type Review } from '../support/aggregate-topology.ts'
import { Runner } from '../support/runtime-harness.ts'
import { seededRandom } from '../support/seeded-random.ts'
import { endpoints, uniqueName } from '../support/stack.ts'
import { endOffsets, readToEnd, waitCaughtUp } from '../support/topic-offsets.ts'

const PARTITIONS = 3
const HOT_CHILDREN = 2_000

function direct(rows: ReadonlyMap<string, Review>): {
  counts: Map<string, unknown>
  stars: Map<string, unknown>
  top: Map<string, unknown>
} {
  const counts = new Map<string, number>()
  const stars = new Map<string, { sum: number; n: number }>()
  const children = new Map<string, { key: string; value: number }[]>()
  for (const [key, r] of rows) {
    if (r.product === null) continue
    counts.set(r.product, (counts.get(r.product) ?? 0) + 1)
    const s = stars.get(r.product) ?? { sum: 0, n: 0 }
    stars.set(r.product, { sum: s.sum + r.stars, n: s.n + 1 })
    children.set(r.product, [...(children.get(r.product) ?? []), { key, value: r.stars }])
  }
  const top = new Map<string, unknown>()
  for (const [product, items] of children) {
    items.sort((a, b) => b.value - a.value || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    top.set(product, {
      items: items.slice(0, COLLECT_LIMIT),
      total: items.length,
      truncated: items.length > COLLECT_LIMIT,
    })
  }
  return { counts, stars, top }
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
  'aggregate differential: two Kafka runtime processes (one SIGKILLed mid-transaction) = the test driver = the aggregate of the final rows',
  { timeout: 170_000 },
  async (t) => {
    await checkKafka(endpoints)
    await checkRedis(endpoints.redisUrl)
    const seed = Number(process.env.RAGSTREAM_AGG_SEED ?? randomInt(1, 2 ** 31))
    t.diagnostic(`seed ${seed} (replay: RAGSTREAM_AGG_SEED=${seed})`)
    const random = seededRandom(seed)
    const id = uniqueName('agg')
    const reviewsTopic = `${id}-reviews`
    const applicationId = `${id}-app`
    const built = reviewAggregates(applicationId, reviewsTopic)
    const outputs = [`${applicationId}-counts`, `${applicationId}-stars`, `${applicationId}-top`]
    const processor = built.compile({
      partitions: PARTITIONS,
      sinkPartitions: Object.fromEntries(outputs.map((o) => [o, PARTITIONS])),
    })
    const admin = new Admin({ clientId: uniqueName('agg-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    const producer = new Producer({
      clientId: uniqueName('agg-input'),
      bootstrapBrokers: [...endpoints.kafkaBrokers],
      idempotent: true,
    })
    const cleanup: (() => Promise<void>)[] = []
    t.after(async () => {
      for (const step of cleanup.reverse()) await step().catch(() => {})
      await producer.close().catch(() => {})
      await admin
        .deleteTopics({
          topics: [
            reviewsTopic,
            ...outputs,
            ...processor.topics.filter((x) => x.role !== 'source' && x.role !== 'sink').map((x) => x.name),
          ],
        })
        .catch(() => {})
      await admin.deleteGroups({ groups: [applicationId] }).catch(() => {})
      await deleteRedisKeys(endpoints.redisUrl, applicationId)
      await admin.close()
    })
    await admin.createTopics({ topics: [reviewsTopic, ...outputs], partitions: PARTITIONS, replicas: 1 })
    for (let attempt = 0; ; attempt++) {
      const listed = new Set(await admin.listTopics())
      if ([reviewsTopic, ...outputs].every((name) => listed.has(name))) break
      assert.ok(attempt < 100, 'created topics are not listed by the broker')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }

    // Instance b kills itself (SIGKILL) inside an open transaction, after producing its outputs and
    // changelog records but before the commit, once it has committed a few batches.
    const crashAfterBatches = 3 + Math.floor(random() * 5)
    const runners = ['a', 'b'].map(
      (instanceId) =>
        new Runner(`agg-${instanceId}`, {
          brokers: [...endpoints.kafkaBrokers],
          applicationId,
          input: reviewsTopic,
          output: outputs[0],
          instanceId,
          store: 'redis',
          redisUrl: endpoints.redisUrl,
          topology: 'aggregate',
          partitions: PARTITIONS,
          batchMaxRecords: 200,
          ...(instanceId === 'b' ? { crashAtStage: 'produced' as const, crashAfterBatches } : {}),
        }),
    )
    cleanup.push(async () => {
      for (const r of runners) await r.stop()
    })
    const [a, b] = runners
    const events = (): RuntimeEvent[] => runners.flatMap((r) => r.events) as unknown as RuntimeEvent[]

    const rows = new Map<string, Review>()
    const sent: { key: string; value: Review | null }[] = []
    let products = Array.from({ length: 12 }, (_, i) => `p${i}`)
    const send = async (changes: { key: string; value: Review | null }[]) => {
      for (const c of changes) {
        if (c.value === null) rows.delete(c.key)
        else rows.set(c.key, c.value)
      }
      sent.push(...changes)
      for (let i = 0; i < changes.length; i += 500)
        await producer.send({
          messages: changes.slice(i, i + 500).map((c) => ({
            topic: reviewsTopic,
            partition: partitionForString(c.key, PARTITIONS),
            key: Buffer.from(c.key, 'utf8'),
            ...(c.value === null ? {} : { value: Buffer.from(JSON.stringify(c.value), 'utf8') }),
          })),
        })
    }
    const stars = (rng = random) => 1 + Math.floor(rng() * 5)
    const randomChange = (rng = random): { key: string; value: Review | null } => {
      const roll = rng()
      const key = rng() < 0.5 ? `hot-${Math.floor(rng() * HOT_CHILDREN)}` : `r${Math.floor(rng() * 300)}`
      if (roll < 0.15) return { key, value: null }
      if (roll < 0.2) return { key, value: { product: null, stars: stars(rng) } }
      const product = rng() < 0.3 ? 'hot' : products[Math.floor(rng() * products.length)]
      return { key, value: { product, stars: stars(rng) } }
    }
    const caughtUp = async () => {
      assert.ok(a.alive, `seed ${seed}: instance a exited: ${JSON.stringify(a.events.slice(-3))} ${a.stderr}`)
      await waitCaughtUp(
        admin,
        PARTITIONS,
        applicationId,
        [reviewsTopic],
        processor.topics.filter((x) => x.role === 'repartition').map((x) => x.name),
        90_000,
        events(),
      )
      assert.ok(a.alive, `seed ${seed}: instance a exited: ${JSON.stringify(a.events.slice(-3))} ${a.stderr}`)
    }

    // Phase 1: the hot parent gets its thousands of children, others a few.
    await send(
      Array.from({ length: HOT_CHILDREN }, (_, i) => ({ key: `hot-${i}`, value: { product: 'hot', stars: stars() } })),
    )
    await send(
      Array.from({ length: 300 }, (_, i) => ({
        key: `r${i}`,
        value: { product: products[Math.floor(random() * products.length)], stars: stars() },
      })),
    )
    // Phase 2: moves, deletes, updates while both instances run.
    for (let burst = 0; burst < 4; burst++) await send(Array.from({ length: 250 }, () => randomChange()))
    // Instance b dies inside a transaction once it has committed `crashAfterBatches` batches. How much
    // of the work above is b's depends on when it joined the group (a takes every task until then, and
    // under load it may take most of the work), so small bursts go on until b has died: b always gets
    // its batches, and a b that stops processing fails here. They draw from their own random stream,
    // so the rest of the seed's changes stay the same whatever their number.
    const extra = seededRandom(seed + 1)
    let extraChanges = 0
    for (const deadline = Date.now() + 90_000; b.alive;) {
      assert.ok(
        Date.now() < deadline,
        `seed ${seed}: b never died inside a transaction after ${crashAfterBatches} batches; last events: ${JSON.stringify(b.events.slice(-5))}`,
      )
      await send(Array.from({ length: 50 }, () => randomChange(extra)))
      extraChanges += 50
      await b.exitCode('a burst', 500).catch(() => undefined)
    }
    // a takes over b's partitions after the session timeout (restoring their stores from the
    // changelogs) and b's open transaction is aborted.
    assert.equal(await b.exitCode('the SIGKILL inside a transaction', 10_000), null)
    assert.equal(b.child.signalCode, 'SIGKILL')
    assert.ok(
      b.events.some((e) => e.event === 'crashing'),
      `b crashed at 'produced': ${b.stderr}`,
    )
    // Its open transaction holds every topic it wrote below their last stable offset until the broker
    // aborts it (transaction timeout): read_committed ends (what "caught up" compares with) stay behind
    // it until then, so wait until they pass the high watermarks of the moment it died.
    const written = [...outputs, ...processor.topics.filter((x) => x.role === 'repartition').map((x) => x.name)]
    const highWatermarks = await admin.listOffsets({
      topics: written.map((name) => ({
        name,
        partitions: Array.from({ length: PARTITIONS }, (_, partitionIndex) => ({ partitionIndex, timestamp: -1n })),
      })),
      isolationLevel: 0,
    })
    for (const deadline = Date.now() + 90_000; ;) {
      const stable = await endOffsets(admin, PARTITIONS, written)
      const held = highWatermarks.flatMap((x) =>
        x.partitions
          .filter((p) => stable.get(`${x.name}:${p.partitionIndex}`)! < p.offset)
          .map((p) => `${x.name}[${p.partitionIndex}]`),
      )
      if (held.length === 0) break
      assert.ok(Date.now() < deadline, `seed ${seed}: b's transaction was never aborted: ${held.join(', ')}`)
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    // Phase 3: p0 loses every child (the group is deleted) and gets no new ones, more churn.
    products = products.filter((p) => p !== 'p0')
    await send([...rows].filter(([, r]) => r.product === 'p0').map(([key]) => ({ key, value: null })))
    for (let burst = 0; burst < 3; burst++) await send(Array.from({ length: 250 }, () => randomChange()))
    await caughtUp()

    const driver = new TopologyTestDriver(built, { partitions: PARTITIONS })
    t.after(() => driver.close())
    for (let i = 0; i < sent.length; i += 200)
      await driver.pipeBatch(sent.slice(i, i + 200).map((c) => ({ topic: reviewsTopic, key: c.key, value: c.value })))

    const want = direct(rows)
    assert.equal(want.counts.has('p0'), false)
    assert.ok((want.counts.get('hot') as number) > 1_000, 'the hot parent keeps over a thousand children')
    for (const [output, expected] of [
      [outputs[0], want.counts],
      [outputs[1], want.stars],
      [outputs[2], want.top],
    ] as const) {
      const committed = await readToEnd(admin, PARTITIONS, [output])
      const actual = table(committed)
      assert.deepEqual(sorted(actual), sorted(driver.readTable(output)), `seed ${seed}: ${output}: runtime vs driver`)
      assert.deepEqual(sorted(actual), sorted(expected), `seed ${seed}: ${output}: runtime vs direct aggregate`)
      for (const r of committed)
        assert.equal(r.partition, partitionForString(r.key!.toString(), PARTITIONS), `${output}: key on its partition`)
    }
    assert.deepEqual(
      await readToEnd(admin, PARTITIONS, [processor.topics.find((x) => x.role === 'dead-letter')!.name]),
      [],
      `seed ${seed}: no dead letters`,
    )
    t.diagnostic(
      `${sent.length} child changes; hot parent: ${String(want.counts.get('hot'))} children; b SIGKILLed after ${crashAfterBatches} batches (${extraChanges} changes sent until it died)`,
    )
  },
)
