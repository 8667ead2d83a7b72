// Repartition topics are purged up to the committed offsets after commits (DeleteRecords, as Kafka
// Streams does): consumed internal records do not outlive their use, and the disk does not grow.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Admin, ListOffsetTimestamps } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { ProcessorTopology, SinkRecord, SourceRecord } from '../../src/runtime/task.ts'
import { InputFeeder, readCommitted } from '../support/runtime-harness.ts'
import { deleteAfter, runStopped, within } from '../support/runtime-waits.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const PARTITIONS = 2

/** input → (same key, same partition) repartition topic → output: every record passes the repartition topic once. */
function rekeyTopology(applicationId: string, input: string, repartition: string, output: string): ProcessorTopology {
  return {
    applicationId,
    sourceTopics: [input, repartition],
    topics: [
      { name: input, role: 'source', config: {} },
      { name: repartition, role: 'repartition', partitions: PARTITIONS, config: { 'retention.ms': '-1' } },
      { name: output, role: 'sink', config: {} },
    ],
    storeNames: [],
    prefetchKeys: () => new Map(),
    async process(records: readonly SourceRecord[]): Promise<SinkRecord[]> {
      return records.map((r) => ({
        topic: r.topic === input ? repartition : output,
        partition: r.partition,
        key: r.key,
        value: r.value,
      }))
    },
  }
}

async function offsets(admin: Admin, topic: string, timestamp: bigint): Promise<bigint[]> {
  const [listed] = await admin.listOffsets({
    topics: [{ name: topic, partitions: [...Array(PARTITIONS).keys()].map((p) => ({ partitionIndex: p, timestamp })) }],
  })
  return [...listed.partitions].sort((a, b) => a.partitionIndex - b.partitionIndex).map((p) => p.offset)
}

test('repartition purge: after commits, each repartition partition starts at its committed offset', async (t) => {
  await checkKafka(endpoints)
  const applicationId = uniqueName('rt-purge')
  const input = `${applicationId}-in`
  const output = `${applicationId}-out`
  const repartition = `${applicationId}-rekey-repartition`
  await createTopics(t, [input, output], PARTITIONS)
  await deleteAfter(t, [repartition, `${applicationId}-dead-letter`])
  const admin = new Admin({ clientId: uniqueName('purge-check'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => admin.close())

  const feeder = new InputFeeder(input, 8)
  t.after(() => feeder.close())
  await feeder.send(300)
  const events: RuntimeEvent[] = []
  const runtime = new KafkaRuntime(rekeyTopology(applicationId, input, repartition, output), {
    brokers: endpoints.kafkaBrokers,
    stores: new Map(),
    sessionTimeoutMs: 3_000,
    batchMaxRecords: 40,
    fetchMaxWaitMs: 100,
    repartitionPurgeIntervalMs: 0,
    onEvent: (e) => void events.push(e),
  })
  const running = runStopped(t, runtime, 'the runtime')
  const out = await readCommitted(output, PARTITIONS, (r) => r.length >= 300, 30_000)
  assert.equal(out.length, 300)

  // Purged up to the committed offsets: the log start offset of each partition is the group's committed offset.
  let committed: bigint[]
  let start: bigint[]
  const deadline = Date.now() + 20_000
  for (;;) {
    const [group] = await admin.listConsumerGroupOffsets({ groups: [applicationId] })
    const partitions = group.topics.find((x) => x.name === repartition)?.partitions ?? []
    committed = [...partitions].sort((a, b) => a.partitionIndex - b.partitionIndex).map((p) => p.committedOffset)
    start = await offsets(admin, repartition, ListOffsetTimestamps.EARLIEST)
    if (committed.length === PARTITIONS && start.every((s, p) => s === committed[p]) && committed.every((c) => c > 0n))
      break
    if (Date.now() > deadline) assert.fail(`log start ${start.join(',')} vs committed ${committed.join(',')}`)
    await new Promise((r) => setTimeout(r, 200))
  }
  const end = await offsets(admin, repartition, ListOffsetTimestamps.LATEST)
  for (let p = 0; p < PARTITIONS; p++) {
    // All but at most the last transaction's commit marker is gone.
    assert.ok(end[p] - start[p] <= 1n, `partition ${p}: start ${start[p]}, end ${end[p]}`)
  }
  assert.ok(events.some((e) => e.event === 'repartition-purged'))
  assert.ok(!events.some((e) => e.event === 'repartition-purge-failed'))
  runtime.stop()
  assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')
})
