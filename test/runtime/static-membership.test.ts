// Static membership (KIP-345): an instance id is the consumer's group.instance.id, so a restart with
// the same id within the session timeout takes its tasks back without a rebalance: the other member
// keeps its tasks and generation, nobody restores anything but the restarted member.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkKafka } from '../../src/config/services.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { countingTopology } from '../support/counting-topology.ts'
import {
  assertExactlyOnce,
  countingTopics,
  InputFeeder,
  markersSeen,
  readCommitted,
} from '../support/runtime-harness.ts'
import { runStopped, until, within } from '../support/runtime-waits.ts'
import { endpoints } from '../support/stack.ts'

const PARTITIONS = 4

test('static membership: a same-id restart within the session timeout causes no rebalance; the output stays exact', async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-static', PARTITIONS)
  const feeder = new InputFeeder(input, 16)
  t.after(() => feeder.close())
  await feeder.send(400)
  const topology = countingTopology({ applicationId, input, output })
  const start = (instanceId: string, events: RuntimeEvent[]): { runtime: KafkaRuntime; running: Promise<unknown> } => {
    const runtime = new KafkaRuntime(topology, {
      brokers: endpoints.kafkaBrokers,
      // Shared across incarnations is not needed: a memory store is restored from the changelog.
      stores: new Map([['counts', new MemoryStateStore('counts')]]),
      instanceId,
      sessionTimeoutMs: 15_000,
      rebalanceTimeoutMs: 15_000,
      transactionTimeoutMs: 10_000,
      batchMaxRecords: 50,
      fetchMaxWaitMs: 100,
      onEvent: (e) => void events.push(e),
    })
    return { runtime, running: runStopped(t, runtime, instanceId) }
  }
  const assigned = (events: RuntimeEvent[]) =>
    events.filter((e): e is Extract<RuntimeEvent, { event: 'assigned' }> => e.event === 'assigned')

  const aEvents: RuntimeEvent[] = []
  const a = start(`${applicationId}-a`, aEvents)
  await until('a to own every task', () => assigned(aEvents).at(-1)?.tasks.length === PARTITIONS, 30_000)
  const bEvents: RuntimeEvent[] = []
  const scaleOut = Date.now()
  const b = start(`${applicationId}-b`, bEvents)
  await until(
    'a and b to split the tasks',
    () => assigned(aEvents).at(-1)?.tasks.length === PARTITIONS / 2 && assigned(bEvents).length > 0,
    30_000,
  )
  const scaleOutMs = Date.now() - scaleOut
  const aBefore = assigned(aEvents).at(-1)!
  const bBefore = assigned(bEvents).at(-1)!
  assert.equal(aBefore.generationId, bBefore.generationId)
  const aAssignments = assigned(aEvents).length

  // b stops (gracefully: a static member does not leave the group) and comes back with its id.
  b.runtime.stop()
  assert.equal(await within(b.running, 30_000, 'b to stop'), 'stopped')
  await feeder.send(200)
  const restarted = Date.now()
  const b2Events: RuntimeEvent[] = []
  const b2 = start(`${applicationId}-b`, b2Events)
  await until('b to take its tasks back', () => assigned(b2Events).length > 0, 15_000)
  const b2Assigned = assigned(b2Events)[0]
  assert.deepEqual(b2Assigned.tasks, bBefore.tasks, 'the same tasks')
  assert.equal(b2Assigned.generationId, bBefore.generationId, 'no new generation: no rebalance')
  const restartMs = Date.now() - restarted
  assert.ok(restartMs < 15_000)
  t.diagnostic(
    `scale-out 1 → 2 (a rebalance): both assigned after ${scaleOutMs} ms; same-id restart: tasks back after ${restartMs} ms, no rebalance`,
  )

  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 45_000)
  assert.equal(assigned(aEvents).length, aAssignments, 'a was never re-assigned')
  assert.ok(!aEvents.some((e) => e.event === 'batch-aborted'), 'a never aborted a batch')
  assertExactlyOnce(records, feeder.sent)
  a.runtime.stop()
  b2.runtime.stop()
  assert.equal(await within(a.running, 30_000, 'a to stop'), 'stopped')
  assert.equal(await within(b2.running, 30_000, 'b2 to stop'), 'stopped')
})
