// A hot foreign key on the real stack (issue 19): 100,000 left rows point at one right row. The
// join completes, a change of that right row re-triggers every one of them, and no record the
// runtime writes (changelogs, repartition packs, outputs) and no Redis store value grows with the
// number of rows sharing the key: each stays under a fixed bound, measured here. The earlier layout
// kept one subscription list per right key: ~40 bytes per left row, 4 MB here, past Kafka's 1 MiB
// record limit at ~26,500 rows. A right change also costs no subscription write at all (the
// subscribers are read with one prefix scan, not rewritten).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { checkKafka, checkRedis } from '../../src/config/services.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { SourceRecord } from '../../src/runtime/task.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import { deleteRedisKeys } from '../support/kafka-fk-runner.ts'
import { endpoints, uniqueName } from '../support/stack.ts'
import { endOffsets, readToEnd, waitCaughtUp } from '../support/topic-offsets.ts'

const ROWS = 100_000
const PARTITIONS = 3
/** Fixed bounds, whatever ROWS is: a pack of 16 small items; one row or entry in a store. */
const MAX_RECORD_BYTES = 8 * 1024
const MAX_STORE_VALUE_BYTES = 1024

interface Row {
  readonly ref: string
  readonly n: number
}
interface Ref {
  readonly name: string
}

/** key + value + headers of a record, as the broker counts it against max.message.bytes (without overhead). */
const recordBytes = (r: SourceRecord): number =>
  (r.key?.length ?? 0) +
  (r.value?.length ?? 0) +
  [...r.headers].reduce((n, [name, value]) => n + Buffer.byteLength(name) + value.length, 0)

describe('fk join with one hot right key on the Kafka runtime', { timeout: 240_000 }, () => {
  const applicationId = uniqueName('hot-key')
  const topics = { rows: `${applicationId}-rows`, refs: `${applicationId}-refs`, out: `${applicationId}-out` }
  const builder = new TopologyBuilder({ applicationId })
  const refs = builder.table<Ref>(topics.refs, { name: 'refs' })
  builder
    .table<Row>(topics.rows, { name: 'rows' })
    .join(refs, {
      name: 'join-refs',
      foreignKey: (row) => row.ref,
      joiner: (row, ref) => ({ n: row.n, ref: ref.name }),
    })
    .to(topics.out, { name: 'joined' })
  const processor = builder.build().compile({ partitions: PARTITIONS, sinkPartitions: { [topics.out]: PARTITIONS } })
  const internal = processor.topics.filter((t) => t.role === 'changelog' || t.role === 'repartition').map((t) => t.name)
  const repartitions = processor.topics.filter((t) => t.role === 'repartition').map((t) => t.name)
  const subscriptionsChangelog = processor.topics.find((t) => t.store === 'join-refs-subscriptions')!.name
  const deadLetter = processor.topics.find((t) => t.role === 'dead-letter')!.name
  const admin = new Admin({ clientId: uniqueName('hot-key-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  const producer = new Producer({
    clientId: uniqueName('hot-key-input'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    idempotent: true,
  })
  const backend = new RedisStateBackend({ applicationId, target: { kind: 'single', url: endpoints.redisUrl } })
  const events: RuntimeEvent[] = []
  let runtime: KafkaRuntime | undefined
  let running: Promise<void> | undefined

  const send = async (topic: string, entries: [string, unknown][]): Promise<void> => {
    for (let i = 0; i < entries.length; i += 10_000)
      await producer.send({
        messages: entries.slice(i, i + 10_000).map(([key, value]) => ({
          topic,
          partition: partitionForString(key, PARTITIONS),
          key: Buffer.from(key),
          value: Buffer.from(JSON.stringify(value)),
        })),
      })
  }
  const settle = (timeoutMs: number): Promise<void> =>
    Promise.race([
      waitCaughtUp(admin, PARTITIONS, applicationId, [topics.rows, topics.refs], repartitions, timeoutMs, events),
      running!.then(() => Promise.reject(new Error(`the runtime stopped: ${JSON.stringify(events.slice(-3))}`))),
    ])
  const totalEnd = async (topic: string): Promise<bigint> =>
    [...(await endOffsets(admin, PARTITIONS, [topic])).values()].reduce((sum, end) => sum + end, 0n)
  /** The output read as a table: latest value per key. */
  const outputTable = async (): Promise<Map<string, { n: number; ref: string }>> => {
    const table = new Map<string, { n: number; ref: string }>()
    for (const r of await readToEnd(admin, PARTITIONS, [topics.out]))
      if (r.value === null) table.delete(r.key!.toString())
      else table.set(r.key!.toString(), JSON.parse(r.value.toString()) as { n: number; ref: string })
    return table
  }
  const assertAll = (table: Map<string, { n: number; ref: string }>, ref: string): void => {
    assert.equal(table.size, ROWS, 'one output per left row')
    let wrong = 0
    for (const [key, value] of table) if (value.ref !== ref || `row-${value.n}` !== key) wrong++
    assert.equal(wrong, 0, `${wrong} of ${ROWS} outputs are not joined with ${ref}`)
  }

  before(async () => {
    await checkKafka(endpoints)
    await checkRedis(endpoints.redisUrl)
    await admin.createTopics({
      topics: [topics.rows, topics.refs],
      partitions: PARTITIONS,
      replicas: 1,
      configs: [{ name: 'cleanup.policy', value: 'compact' }],
    })
    await admin.createTopics({ topics: [topics.out], partitions: PARTITIONS, replicas: 1 })
  })
  after(async () => {
    runtime?.stop()
    await running?.catch(() => {})
    await producer.close().catch(() => {})
    await backend.close().catch(() => {})
    await admin.deleteTopics({ topics: [...Object.values(topics), ...internal, deadLetter] }).catch(() => {})
    await admin.deleteGroups({ groups: [applicationId] }).catch(() => {})
    await admin.close().catch(() => {})
    await deleteRedisKeys(endpoints.redisUrl, applicationId).catch(() => {})
  })

  it('joins 100,000 rows to one key, re-triggers them all on its change, and writes nothing larger than a fixed bound', async (t) => {
    await send(topics.refs, [['HOT', { name: 'v1' }]])
    await send(
      topics.rows,
      Array.from({ length: ROWS }, (_, n): [string, Row] => [`row-${n}`, { ref: 'HOT', n }]),
    )
    runtime = new KafkaRuntime(processor, {
      brokers: endpoints.kafkaBrokers,
      stores: new Map(processor.storeNames.map((name) => [name, backend.store(name)])),
      instanceId: 'hot-key',
      fetchMaxWaitMs: 50,
      // Repartition records stay readable, so their sizes can be measured.
      purgeRepartitionTopics: false,
      onEvent: (e) => events.push(e),
    })
    running = runtime.run()
    let started = performance.now()
    await settle(90_000)
    t.diagnostic(`join of ${ROWS} rows caught up in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    assertAll(await outputTable(), 'v1')

    // The right row changes: every subscriber is answered, and no subscription is rewritten.
    const subscriptionsEnd = await totalEnd(subscriptionsChangelog)
    started = performance.now()
    await send(topics.refs, [['HOT', { name: 'v2' }]])
    await settle(90_000)
    t.diagnostic(`re-trigger of ${ROWS} rows caught up in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    assertAll(await outputTable(), 'v2')
    assert.equal(
      await totalEnd(subscriptionsChangelog),
      subscriptionsEnd,
      'a right change writes no subscription entry',
    )

    // Every record written, by topic: none above the fixed bound.
    const largest = new Map<string, { bytes: number; records: number }>()
    for (const r of await readToEnd(admin, PARTITIONS, [...internal, topics.out])) {
      const seen = largest.get(r.topic) ?? { bytes: 0, records: 0 }
      largest.set(r.topic, { bytes: Math.max(seen.bytes, recordBytes(r)), records: seen.records + 1 })
    }
    for (const [topic, { bytes, records }] of largest)
      t.diagnostic(`${topic.slice(applicationId.length + 1)}: ${records} records, largest ${bytes} bytes`)
    for (const [topic, { bytes }] of largest)
      assert.ok(bytes <= MAX_RECORD_BYTES, `${topic}: a record of ${bytes} bytes (bound ${MAX_RECORD_BYTES})`)
    assert.ok((largest.get(subscriptionsChangelog)?.records ?? 0) >= ROWS, 'one subscription entry per left row')

    // Every value in Redis, by store: none above the fixed bound.
    const redis = new Redis(endpoints.redisUrl)
    try {
      const values = new Map<string, { bytes: number; fields: number }>()
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `rs:{${applicationId}:*}:state`, 'COUNT', 1000)
        cursor = next
        for (const key of keys) {
          const store = key.slice(`rs:{${applicationId}:`.length).replace(/:\d+\}:state$/, '')
          const seen = values.get(store) ?? { bytes: 0, fields: 0 }
          const hash = await redis.hgetallBuffer(key)
          for (const value of Object.values(hash)) seen.bytes = Math.max(seen.bytes, value.length)
          seen.fields += Object.keys(hash).length
          values.set(store, seen)
        }
      } while (cursor !== '0')
      for (const [store, { bytes, fields }] of values)
        t.diagnostic(`store ${store}: ${fields} fields, largest value ${bytes} bytes`)
      assert.ok((values.get('join-refs-subscriptions')?.fields ?? 0) >= ROWS, 'subscriptions are in Redis')
      for (const [store, { bytes }] of values)
        assert.ok(bytes <= MAX_STORE_VALUE_BYTES, `store ${store}: a value of ${bytes} bytes`)
    } finally {
      redis.disconnect()
    }
    assert.deepEqual(await readToEnd(admin, PARTITIONS, [deadLetter]), [], 'nothing dead-lettered')
  })
})
