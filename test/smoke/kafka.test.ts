// Smoke: the local broker runs transactions, and read_committed hides what is not committed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Consumer, Producer, stringDeserializers, stringSerializers } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const READ_COMMITTED = 1

async function readAll(topic: string, expectAtLeast: number, timeoutMs = 10_000): Promise<string[]> {
  const consumer = new Consumer({
    groupId: uniqueName('smoke-reader'),
    clientId: uniqueName('smoke-reader'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    deserializers: stringDeserializers,
    isolationLevel: READ_COMMITTED,
    maxWaitTime: 200,
  })
  const values: string[] = []
  try {
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false })
    const deadline = Date.now() + timeoutMs
    const timer = setInterval(() => {
      if (Date.now() > deadline || values.length >= expectAtLeast) void stream.close()
    }, 100)
    for await (const message of stream) values.push(message.value)
    clearInterval(timer)
  } finally {
    await consumer.close(true)
  }
  return values
}

test('kafka: a transaction is visible to read_committed only after commit, an aborted one never', async (t) => {
  await checkKafka(endpoints)
  const topic = uniqueName('smoke-tx')
  await createTopics(t, [topic])
  const producer = new Producer({
    clientId: uniqueName('smoke-tx'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    transactionalId: uniqueName('smoke-tx'),
    idempotent: true,
    serializers: stringSerializers,
  })
  t.after(() => producer.close())

  const aborted = await producer.beginTransaction()
  await aborted.send({
    messages: [
      { topic, key: 'k', value: 'aborted-1' },
      { topic, key: 'k', value: 'aborted-2' },
    ],
  })
  await aborted.abort()

  const open = await producer.beginTransaction()
  await open.send({ messages: [{ topic, key: 'k', value: 'committed-1' }] })
  // Not yet committed: a read_committed reader sees nothing.
  assert.deepEqual(await readAll(topic, 1, 1500), [])
  await open.send({ messages: [{ topic, key: 'k', value: 'committed-2' }] })
  await open.commit()

  assert.deepEqual(await readAll(topic, 2), ['committed-1', 'committed-2'])
})
