// The Kafka runtime against the real broker: exactly-once under normal operation, graceful stop,
// internal topics, fencing. Crash, zombie, rebalance and Redis-loss scenarios live in their own files.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Admin } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { countingTopology } from '../support/counting-topology.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { assertExactlyOnce, InputFeeder, markersSeen, readCommitted } from '../support/runtime-harness.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const PARTITIONS = 3

async function deleteAfter(t: { after: (fn: () => Promise<void>) => void }, topics: string[]): Promise<void> {
  t.after(async () => {
    const admin = new Admin({ clientId: uniqueName('cleanup'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    await admin.deleteTopics({ topics }).catch(() => {})
    await admin.close()
  })
}

test('runtime: a keyed counting topology runs exactly once, creates its compacted changelog and stops gracefully', async (t) => {
  await checkKafka(endpoints)
  const applicationId = uniqueName('rt-basic')
  const input = `${applicationId}-in`
  const output = `${applicationId}-out`
  await createTopics(t, [input, output], PARTITIONS)
  await deleteAfter(t, [`${applicationId}-counts-changelog`])

  const feeder = new InputFeeder(input, 12)
  t.after(() => feeder.close())
  await feeder.send(500)

  const events: RuntimeEvent[] = []
  const runtime = new KafkaRuntime(countingTopology({ applicationId, input, output }), {
    brokers: endpoints.kafkaBrokers,
    stores: new Map([['counts', new MemoryStateStore('counts')]]),
    sessionTimeoutMs: 3_000,
    transactionTimeoutMs: 10_000,
    batchMaxRecords: 100,
    fetchMaxWaitMs: 100,
    onEvent: (e) => events.push(e),
  })
  const running = runtime.run()
  await feeder.send(500)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 30_000)
  runtime.stop()
  await running

  assert.equal(markersSeen(records, 'end'), PARTITIONS)
  assertExactlyOnce(records, feeder.sent)
  assert.deepEqual(runtime.tasks, [0, 1, 2])
  assert.ok(runtime.stats.batches >= 10, `batches bounded by 100 records: ${runtime.stats.batches}`)

  const admin = new Admin({ clientId: uniqueName('check'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => admin.close())
  const configs = await admin.describeConfigs({ resources: [{ resourceType: 2, resourceName: `${applicationId}-counts-changelog`, configurationKeys: ['cleanup.policy'] }] })
  assert.equal(configs[0].configs.find((c) => c.name === 'cleanup.policy')?.value, 'compact')
  const metadata = await admin.metadata({ topics: [`${applicationId}-counts-changelog`] })
  assert.equal(metadata.topics.get(`${applicationId}-counts-changelog`)?.partitionsCount, PARTITIONS)
  assert.ok(events.some((e) => e.event === 'stopped'))
})
