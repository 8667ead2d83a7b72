// Rebalance: two instances share the group's tasks (Redis state stores); one is killed mid-run; the
// survivor takes over its tasks with no state transfer — it finds their stores in Redis and replays at
// most the changelog tail since their last flush — and the output stays exact.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { checkKafka } from '../../src/config/services.ts'
import {
  assertExactlyOnce,
  countingTopics,
  InputFeeder,
  markersSeen,
  readCommitted,
  readCommittedWithKafkaConsumer,
  Runner,
} from '../support/runtime-harness.ts'
import type { RunnerConfig } from '../support/runtime-runner.ts'
import { endpoints } from '../support/stack.ts'

const PARTITIONS = 4

test(
  'runtime rebalance: two instances split the tasks; one is killed mid-run; the survivor takes over with no state transfer and the output is exact',
  { timeout: 100_000 },
  async (t) => {
    await checkKafka(endpoints)
    const { applicationId, input, output } = await countingTopics(t, 'rt-rebalance', PARTITIONS)
    const base: RunnerConfig = {
      brokers: [...endpoints.kafkaBrokers],
      applicationId,
      input,
      output,
      instanceId: 'a',
      store: 'redis',
      redisUrl: endpoints.redisUrl,
      batchMaxRecords: 50,
      sessionTimeoutMs: 2_000,
      transactionTimeoutMs: 4_000,
    }
    const redis = new Redis(endpoints.redisUrl)
    t.after(async () => {
      await redis
        .unlink(...Array.from({ length: PARTITIONS }, (_, p) => `rs:{${applicationId}:counts:${p}}:state`))
        .catch(() => {})
      redis.disconnect()
    })

    const feeder = new InputFeeder(input, 16)
    t.after(() => feeder.close())
    let feeding = true
    const feeding$ = (async () => {
      while (feeding) {
        await feeder.send(20)
        await new Promise((r) => setTimeout(r, 50))
      }
    })()

    const a = new Runner('a', { ...base, instanceId: 'a' })
    const b = new Runner('b', { ...base, instanceId: 'b' })
    t.after(async () => {
      a.kill('SIGKILL')
      b.kill('SIGKILL')
    })
    const split = (e: { event: string; tasks?: unknown }): boolean =>
      e.event === 'assigned' && Array.isArray(e.tasks) && e.tasks.length === PARTITIONS / 2
    await a.waitFor(split, 30_000)
    await b.waitFor(split, 30_000)
    const aTasks = [...a.events].reverse().find(split)!.tasks as number[]
    const bTasks = [...b.events].reverse().find(split)!.tasks as number[]
    assert.deepEqual([...aTasks, ...bTasks].sort(), [0, 1, 2, 3], 'every task has exactly one owner')

    // Let both commit under the split assignment, then kill one in the middle of its work. Twice: the
    // 'committed' stage comes before the store flush, and a runtime flushes before its next batch, so
    // after a second commit the first one's state is in Redis (with the commit cadence, a transaction
    // takes up to commitIntervalMs of input, and the first commit after the split may be the only one).
    const from = a.count('committed')
    for (let i = 0; i < 2; i++) {
      await a.waitFor((e) => e.event === 'committed', 20_000, a.events.length)
      await b.waitFor((e) => e.event === 'committed', 20_000, b.events.length)
    }
    assert.ok(a.count('committed') > from)
    a.kill('SIGKILL')
    await a.exitCode('exit after SIGKILL', 10_000)

    const bEvents = b.events.length
    await b.waitFor(
      (e) => e.event === 'assigned' && Array.isArray(e.tasks) && e.tasks.length === PARTITIONS,
      30_000,
      bEvents,
    )
    await b.waitFor((e) => e.event === 'committed', 30_000, b.events.length)
    const replayedFromZero = b.events
      .slice(bEvents)
      .filter((e) => e.event === 'restored' && e.from === '0' && Number(e.records) > 0)
    assert.deepEqual(replayedFromZero, [], 'the taken-over stores were in Redis: no replay from offset 0')
    feeding = false
    await feeding$

    await feeder.sendMarkers(PARTITIONS, 'end')
    const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 40_000)
    assert.equal(await b.stop(), 0, b.stderr)
    assert.equal(markersSeen(records, 'end'), PARTITIONS)
    assertExactlyOnce(records, feeder.sent)
    assertExactlyOnce(await readCommittedWithKafkaConsumer(output, records.length), feeder.sent)
  },
)
