/**
 * The FK-join semantics suite's runner on the real stack: every session gets fresh topics (orders,
 * products, output; the runtime creates its internal ones), its own consumer group and Redis key
 * namespace, and a KafkaRuntime (exactly once, Redis state stores) running `fkJoinTopology`.
 *
 * - `send` produces with an idempotent producer to `partitionForString(key)`, as the test driver does.
 * - `settle` returns once the group's committed offsets reached the read_committed end of every source
 *   and repartition topic, twice in a row with the same ends (waitCaughtUp): everything sent, and
 *   everything it caused, is processed and committed.
 * - `outputsFor` / `outputTable` read the output topic read_committed from offset 0.
 * - `close` checks that nothing was dead-lettered, stops the runtime, and
 *   deletes the topics, the group and the Redis keys.
 */
import assert from 'node:assert/strict'
import { Admin, Producer } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import { fkJoinTopology, type FkJoinRunner, type FkJoinSession, type OrderDetail } from './fk-join-cases.ts'
import { endpoints, uniqueName } from './stack.ts'
import { readToEnd, waitCaughtUp } from './topic-offsets.ts'

const SETTLE_TIMEOUT_MS = 45_000

/** Deletes every Redis key of an application's stores (never anything else: the Redis is shared). */
export async function deleteRedisKeys(redisUrl: string, applicationId: string): Promise<void> {
  const redis = new Redis(redisUrl)
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `rs:{${applicationId}:*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.unlink(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}

function parse(value: Buffer | null): OrderDetail | null {
  return value === null ? null : (JSON.parse(value.toString('utf8')) as OrderDetail)
}

export const kafkaFkJoinRunner: FkJoinRunner = {
  async start(type, partitions) {
    const applicationId = uniqueName(`fk-${type}`)
    const topics = {
      applicationId,
      orders: `${applicationId}-orders`,
      products: `${applicationId}-products`,
      output: `${applicationId}-order-details`,
    }
    const admin = new Admin({ clientId: uniqueName('fk-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    const producer = new Producer({
      clientId: uniqueName('fk-input'),
      bootstrapBrokers: [...endpoints.kafkaBrokers],
      idempotent: true,
    })
    const backend = new RedisStateBackend({ applicationId, target: { kind: 'single', url: endpoints.redisUrl } })
    const processor = fkJoinTopology(type, topics).compile({
      partitions,
      sinkPartitions: { [topics.output]: partitions },
    })
    const internal = processor.topics.filter((t) => t.role !== 'source' && t.role !== 'sink').map((t) => t.name)
    const repartitions = processor.topics.filter((t) => t.role === 'repartition').map((t) => t.name)
    const deadLetter = processor.topics.find((t) => t.role === 'dead-letter')!.name
    const events: RuntimeEvent[] = []
    let runtime: KafkaRuntime | undefined
    let running: Promise<void> | undefined
    let failure: unknown

    const cleanup = async (): Promise<void> => {
      runtime?.stop()
      await running?.catch(() => {})
      await producer.close().catch(() => {})
      await backend.close().catch(() => {})
      await admin.deleteTopics({ topics: [topics.orders, topics.products, topics.output, ...internal] }).catch(() => {})
      await admin.deleteGroups({ groups: [applicationId] }).catch(() => {})
      await admin.close().catch(() => {})
      await deleteRedisKeys(endpoints.redisUrl, applicationId).catch(() => {})
    }

    try {
      await admin.createTopics({
        topics: [topics.orders, topics.products],
        partitions,
        replicas: 1,
        configs: [{ name: 'cleanup.policy', value: 'compact' }],
      })
      await admin.createTopics({ topics: [topics.output], partitions, replicas: 1 })
      // The broker answers createTopics before every listing shows them; the runtime refuses missing sources.
      for (let attempt = 0; ; attempt++) {
        const listed = new Set(await admin.listTopics())
        if ([topics.orders, topics.products, topics.output].every((t) => listed.has(t))) break
        if (attempt === 100)
          throw new Error(
            `created topics not listed by the broker after 10 s: ${topics.orders}, ${topics.products}, ${topics.output}`,
          )
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      runtime = new KafkaRuntime(processor, {
        brokers: endpoints.kafkaBrokers,
        stores: new Map(processor.storeNames.map((name) => [name, backend.store(name)])),
        instanceId: 'fk-suite',
        sessionTimeoutMs: 6_000,
        transactionTimeoutMs: 20_000,
        batchMaxRecords: 100,
        fetchMaxWaitMs: 50,
        onEvent: (e) => events.push(e),
      })
      running = runtime.run()
      running.catch((error: unknown) => {
        failure = error
      })
    } catch (error) {
      await cleanup()
      throw error
    }

    const output = async () => (await readToEnd(admin, partitions, [topics.output])).filter((r) => r.key !== null)
    const session: FkJoinSession = {
      topics,
      async send(topic, key, value) {
        const message = {
          topic,
          partition: partitionForString(key, partitions),
          key: Buffer.from(key, 'utf8'),
          ...(value === null ? {} : { value: Buffer.from(JSON.stringify(value), 'utf8') }),
        }
        await producer.send({ messages: [message] })
      },
      async settle() {
        await Promise.race([
          waitCaughtUp(
            admin,
            partitions,
            applicationId,
            [topics.orders, topics.products],
            repartitions,
            SETTLE_TIMEOUT_MS,
            events,
          ),
          running!.then(() => Promise.reject(new Error(`the runtime stopped: ${JSON.stringify(events.slice(-3))}`))),
        ])
      },
      async outputsFor(key) {
        // One key lives on one partition, and a partition reads in offset order: this is output order.
        return (await output()).filter((r) => r.key!.toString('utf8') === key).map((r) => parse(r.value))
      },
      async outputTable() {
        const table = new Map<string, OrderDetail>()
        for (const r of await output()) {
          const value = parse(r.value)
          if (value === null) table.delete(r.key!.toString('utf8'))
          else table.set(r.key!.toString('utf8'), value)
        }
        return table
      },
      async close() {
        try {
          if (failure !== undefined)
            throw new Error(`the runtime failed: ${(failure as Error).message}`, { cause: failure })
          const dead = await readToEnd(admin, partitions, [deadLetter])
          assert.deepEqual(
            dead.map((r) => Object.fromEntries([...r.headers].map(([k, v]) => [k, v.toString()]))),
            [],
            'unexpected dead letters',
          )
        } finally {
          await cleanup()
        }
      },
    }
    return session
  },
}
