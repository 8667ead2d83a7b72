// currentCheckpoints: the one-pass check that lets a moved task skip its restore. A store partition
// is current only when its Redis checkpoint is its changelog partition's end with no transaction
// open on it; behind, missing, or ahead of an open transaction's records, it goes through the
// restorer. Against a real broker: committed and open transactions, read_committed offsets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Consumer, Producer, stringSerializers } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { currentCheckpoints } from '../../src/runtime/current-checkpoints.ts'
import type { StateStore } from '../../src/state/store.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

/** A store that knows only its checkpoints (all currentCheckpoints reads of a store). */
const storeAt = (checkpoints: Record<number, bigint>): StateStore =>
  ({ checkpoint: async (partition: number) => checkpoints[partition] }) as unknown as StateStore

test('currentCheckpoints: current only at the changelog end with no open transaction', async (t) => {
  await checkKafka(endpoints)
  const topic = uniqueName('cl-current')
  await createTopics(t, [topic], 3)
  const producer = new Producer({
    clientId: uniqueName('cl-current'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    transactionalId: uniqueName('cl-current'),
    idempotent: true,
    serializers: stringSerializers,
  })
  t.after(() => producer.close())
  // Partition 0: 3 records and the commit marker (end 4). Partition 1: 1 record committed (end 2),
  // then a transaction left open with 1 record (high watermark 3, last stable offset 2). Partition 2: empty.
  const committed = await producer.beginTransaction()
  await committed.send({
    messages: [
      ...['a', 'b', 'c'].map((key) => ({ topic, partition: 0, key, value: key })),
      { topic, partition: 1, key: 'd', value: 'd' },
    ],
  })
  await committed.commit()
  const open = await producer.beginTransaction()
  await open.send({ messages: [{ topic, partition: 1, key: 'e', value: 'e' }] })
  t.after(() => open.abort().catch(() => {}))

  const consumer = new Consumer({
    clientId: uniqueName('cl-current'),
    groupId: uniqueName('cl-current'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
  })
  t.after(() => consumer.close(true))
  const stores = new Map([
    ['at-end', storeAt({ 0: 4n, 1: 2n, 2: 0n })],
    ['behind', storeAt({ 0: 3n })],
    ['lost', storeAt({})],
  ])
  const changelogs = new Map([...stores.keys()].map((name) => [name, topic]))
  const current = await currentCheckpoints(consumer, stores, changelogs, [0, 1, 2])
  assert.deepEqual(
    Object.fromEntries(current),
    { 'at-end:0': 4n, 'at-end:2': 0n },
    'at the end: current; before an open transaction, behind, or without a checkpoint: restored',
  )
  assert.deepEqual(await currentCheckpoints(consumer, stores, changelogs, []), new Map())
})
