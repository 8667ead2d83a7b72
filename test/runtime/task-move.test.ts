// A task that moves between instances moves no data: its store lives in Redis, and the new owner
// replays only the changelog after the Redis checkpoint — nothing when the checkpoint matches the
// changelog's end. A task whose Redis copy was lost on the way restores its changelog exactly: every
// committed record, from the log start. Both say so in their `restored` events, and the output stays exact.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Admin } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { checkKafka } from '../../src/config/services.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { countingTopology } from '../support/counting-topology.ts'
import {
  assertExactlyOnce,
  countingTopics,
  InputFeeder,
  markersSeen,
  readCommitted,
} from '../support/runtime-harness.ts'
import { runStopped, until, within } from '../support/runtime-waits.ts'
import { endOffsets, readToEnd } from '../support/topic-offsets.ts'
import { endpoints, uniqueName } from '../support/stack.ts'

const PARTITIONS = 4

type Assigned = Extract<RuntimeEvent, { event: 'assigned' }>
type Restored = Extract<RuntimeEvent, { event: 'restored' }>

test('task move: a task moved with its Redis store current restores 0 records; one whose store was lost restores its changelog exactly', async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-task-move', PARTITIONS)
  const changelog = `${applicationId}-counts-changelog`
  const stateKey = (p: number): string => `rs:{${applicationId}:counts:${p}}:state`
  const redis = new Redis(endpoints.redisUrl)
  const admin = new Admin({ clientId: uniqueName('task-move'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(async () => {
    const keys = await redis.keys(`rs:{${applicationId}:*`)
    if (keys.length > 0) await redis.unlink(...keys)
    redis.disconnect()
    await admin.close()
  })
  const feeder = new InputFeeder(input, 32)
  t.after(() => feeder.close())
  const topology = countingTopology({ applicationId, input, output })

  const start = (instanceId: string, events: RuntimeEvent[]): { runtime: KafkaRuntime; running: Promise<unknown> } => {
    const backend = new RedisStateBackend({ applicationId, target: { kind: 'single', url: endpoints.redisUrl } })
    t.after(() => backend.close())
    const runtime = new KafkaRuntime(topology, {
      brokers: endpoints.kafkaBrokers,
      stores: new Map([['counts', backend.store('counts')]]),
      instanceId,
      // A stop hands the tasks over at once, so the moves below are the ones the test makes.
      leaveGroupOnStop: true,
      sessionTimeoutMs: 10_000,
      rebalanceTimeoutMs: 10_000,
      transactionTimeoutMs: 10_000,
      batchMaxRecords: 50,
      fetchMaxWaitMs: 100,
      onEvent: (e) => void events.push(e),
    })
    return { runtime, running: runStopped(t, runtime, instanceId) }
  }
  const lastAssigned = (events: RuntimeEvent[]): { at: number; event: Assigned } | undefined => {
    for (let at = events.length - 1; at >= 0; at--) {
      const e = events[at]
      if (e.event === 'assigned') return { at, event: e }
    }
    return undefined
  }
  /** The `restored` events of the latest assignment, once there is one per owned task (the store is `counts`). */
  const restoredAfterLastAssignment = (events: RuntimeEvent[]): Restored[] | undefined => {
    const last = lastAssigned(events)
    if (!last) return undefined
    const restored = events.slice(last.at).filter((e): e is Restored => e.event === 'restored')
    return restored.length === last.event.tasks.length ? restored : undefined
  }
  /** Every Redis checkpoint is the changelog's end (its last commit marker excluded): the stores are flushed. */
  const storesFlushed = async (what: string): Promise<Map<number, bigint>> => {
    const deadline = Date.now() + 30_000
    for (;;) {
      const ends = await endOffsets(admin, PARTITIONS, [changelog])
      const checkpoints = new Map<number, bigint>()
      for (let p = 0; p < PARTITIONS; p++) {
        const stored = await redis.hget(stateKey(p), 'checkpoint')
        if (stored !== null && BigInt(stored) + 1n === ends.get(`${changelog}:${p}`)) checkpoints.set(p, BigInt(stored))
      }
      if (checkpoints.size === PARTITIONS) return checkpoints
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} to be flushed`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const drained = async (id: string): Promise<void> => {
    await feeder.sendMarkers(PARTITIONS, id)
    const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, id) === PARTITIONS, 60_000)
    assert.equal(markersSeen(records, id), PARTITIONS, `marker ${id} went through every partition`)
  }

  // a alone owns every task and writes every store partition.
  const aEvents: RuntimeEvent[] = []
  start(`${applicationId}-a`, aEvents)
  await until('a to own every task', () => lastAssigned(aEvents)?.event.tasks.length === PARTITIONS, 30_000)
  await feeder.send(400)
  await drained('m1')
  const checkpoints = await storesFlushed("a's stores")

  // b joins: half of a's tasks move to b with their stores current in Redis.
  const bEvents: RuntimeEvent[] = []
  const b = start(`${applicationId}-b`, bEvents)
  await until(
    'a and b to split the tasks and restore',
    () => {
      const a = lastAssigned(aEvents)?.event
      const bAssigned = lastAssigned(bEvents)?.event
      return (
        a?.tasks.length === PARTITIONS / 2 &&
        bAssigned?.tasks.length === PARTITIONS / 2 &&
        a.generationId === bAssigned.generationId &&
        restoredAfterLastAssignment(aEvents) !== undefined &&
        restoredAfterLastAssignment(bEvents) !== undefined
      )
    },
    60_000,
  )
  const bTasks = lastAssigned(bEvents)!.event.tasks
  const moved = restoredAfterLastAssignment(bEvents)!
  assert.deepEqual(moved.map((e) => e.partition).sort(), [...bTasks].sort())
  for (const e of [...moved, ...restoredAfterLastAssignment(aEvents)!]) {
    assert.equal(e.records, 0, `task ${e.partition} restored nothing: ${JSON.stringify(e, (_, v) => String(v))}`)
    assert.equal(e.cleared, false, `task ${e.partition}: its Redis copy was kept`)
    assert.equal(e.from, checkpoints.get(e.partition), `task ${e.partition} continued from its Redis checkpoint`)
  }

  // b works on its tasks, then one of its store partitions is lost while b is idle, and b leaves:
  // a takes both of b's tasks back; the lost one restores every committed changelog record.
  await feeder.send(400)
  await drained('m2')
  const flushed = await storesFlushed('the stores after m2')
  const [lost, kept] = bTasks
  await redis.unlink(stateKey(lost), `rs:{${applicationId}:counts:${lost}}:scan`)
  const changelogRecords = (await readToEnd(admin, PARTITIONS, [changelog])).filter((r) => r.partition === lost).length
  assert.ok(changelogRecords > 0, 'the lost partition has a changelog to restore')
  const aAssignments = aEvents.filter((e) => e.event === 'assigned').length
  b.runtime.stop()
  assert.equal(await within(b.running, 30_000, 'b to stop'), 'stopped')
  await until(
    'a to take every task back and restore',
    () =>
      aEvents.filter((e) => e.event === 'assigned').length > aAssignments &&
      lastAssigned(aEvents)?.event.tasks.length === PARTITIONS &&
      restoredAfterLastAssignment(aEvents) !== undefined,
    60_000,
  )
  const back = new Map(restoredAfterLastAssignment(aEvents)!.map((e) => [e.partition, e]))
  const restoredLost = back.get(lost)!
  assert.equal(restoredLost.cleared, true, 'Redis had nothing for the lost partition')
  assert.equal(restoredLost.from, 0n)
  assert.equal(restoredLost.records, changelogRecords, 'the lost store restored every committed changelog record')
  for (const p of [kept, ...lastAssigned(aEvents)!.event.tasks.filter((p) => !bTasks.includes(p))]) {
    const e = back.get(p)!
    assert.equal(e.records, 0, `task ${p} restored nothing`)
    assert.equal(e.from, flushed.get(p), `task ${p} continued from its Redis checkpoint`)
  }

  // The restored state is right: counting goes on exactly where it was, on every key.
  await feeder.send(400)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 60_000)
  assert.equal(markersSeen(records, 'end'), PARTITIONS)
  assertExactlyOnce(records, feeder.sent)
})
