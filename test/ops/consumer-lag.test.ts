// Lag and timestamp offsets against the real broker.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { consumerLag, offsetsForTimestamp, totalLag } from '../../src/ops/consumer-lag.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

test(
  'consumerLag: end minus committed per partition, log start when never committed; offsetsForTimestamp',
  { timeout: 20_000 },
  async (t) => {
    await checkKafka(endpoints)
    const topic = uniqueName('ops-lag')
    const group = uniqueName('ops-lag-group')
    await createTopics(t, [topic], 2)
    const admin = new Admin({ clientId: uniqueName('ops-lag'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    const producer = new Producer({ clientId: uniqueName('ops-lag'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    t.after(async () => {
      await producer.close()
      await admin.deleteGroups({ groups: [group] }).catch(() => {})
      await admin.close()
    })
    const t0 = Date.now() - 60_000
    const t1 = Date.now() - 30_000
    await producer.send({
      messages: [0, 1, 2].map((i) => ({ topic, partition: 0, value: Buffer.from(`a${i}`), timestamp: BigInt(t0) })),
    })
    await producer.send({
      messages: [0, 1].map((i) => ({ topic, partition: 0, value: Buffer.from(`b${i}`), timestamp: BigInt(t1) })),
    })
    await producer.send({ messages: [{ topic, partition: 1, value: Buffer.from('c'), timestamp: BigInt(t0) }] })

    const before = await consumerLag(admin, group, [topic, 'no-such-topic-ops-lag'])
    assert.deepEqual(
      before.map((l) => [l.partition, l.end, l.committed, l.lag]),
      [
        [0, '5', null, 5],
        [1, '1', null, 1],
      ],
    )
    assert.equal(totalLag(before), 6)

    await admin.alterConsumerGroupOffsets({
      groupId: group,
      topics: [{ name: topic, partitionOffsets: [{ partition: 0, offset: 4n }] }],
    })
    const after = await consumerLag(admin, group, [topic])
    assert.deepEqual(
      after.map((l) => [l.partition, l.committed, l.lag]),
      [
        [0, '4', 1],
        [1, null, 1],
      ],
    )

    const at = await offsetsForTimestamp(admin, [topic], t1)
    assert.equal(at.get(`${topic}:0`), 3n, 'first record at or after t1')
    assert.equal(at.get(`${topic}:1`), 1n, 'no record that late: the end')
  },
)
