// Redis loss: Redis loses every key of the application (what FLUSHALL or a restart without
// persistence does to it — only this test's keys are removed, the Redis is shared) first while the
// processor runs, then while it is down. Either way each store partition is restored from its
// changelog, offset 0, and the output stays exact. A restart with Redis intact restores nothing from
// 0: the checkpoints are there and no data moves ("no state transfer").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Admin } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { checkKafka, checkRedis } from '../../src/config/services.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { countingTopology } from '../support/counting-topology.ts'
import {
  assertExactlyOnce,
  countingRuntimeOptions,
  countingTopics,
  InputFeeder,
  markersSeen,
  readCommitted,
  Runner,
} from '../support/runtime-harness.ts'
import type { RunnerConfig } from '../support/runtime-runner.ts'
import { runStopped, within } from '../support/runtime-waits.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const PARTITIONS = 3

test(
  'runtime redis loss: Redis loses the stores while the processor runs and while it is down; they are restored from the changelogs and the output is exact',
  { timeout: 90_000 },
  async (t) => {
    await checkKafka(endpoints)
    await checkRedis(endpoints.redisUrl)
    const applicationId = uniqueName('rt-redis')
    const input = `${applicationId}-in`
    const output = `${applicationId}-out`
    await createTopics(t, [input, output], PARTITIONS)
    const redis = new Redis(endpoints.redisUrl)
    const stateKeys = Array.from({ length: PARTITIONS }, (_, p) => `rs:{${applicationId}:counts:${p}}:state`)
    t.after(async () => {
      await redis.unlink(...stateKeys).catch(() => {})
      redis.disconnect()
      const admin = new Admin({ clientId: uniqueName('cleanup'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
      await admin.deleteTopics({ topics: [`${applicationId}-counts-changelog`] }).catch(() => {})
      await admin.close()
    })
    const config: RunnerConfig = {
      brokers: [...endpoints.kafkaBrokers],
      applicationId,
      input,
      output,
      instanceId: 'r',
      store: 'redis',
      redisUrl: endpoints.redisUrl,
      batchMaxRecords: 50,
    }

    const feeder = new InputFeeder(input, 15)
    t.after(() => feeder.close())
    await feeder.send(400)

    const first = new Runner('redis-1', config)
    t.after(async () => first.kill('SIGKILL'))
    await first.waitFor((e) => e.event === 'committed' && Number(e.records) >= 200, 30_000)

    // Loss while running: the next batch finds the checkpoints gone, aborts, and restores from 0.
    const before = first.events.length
    await redis.unlink(...stateKeys)
    await feeder.send(300)
    // Found at the next batch's check (aborted) or at the flush of a batch that already committed
    // (committed-then-failed: the batch stands, its overlay is restored from the changelog).
    await first.waitFor(
      (e) =>
        (e.event === 'batch-aborted' || e.event === 'committed-then-failed') &&
        e.code === 'RS_STATE_LOST' &&
        e.recovery === 'restore' &&
        String(e.error).includes('lost data'),
      20_000,
      before,
    )
    for (let p = 0; p < PARTITIONS; p++)
      await first.waitFor((e) => e.event === 'restored' && e.partition === p && e.from === '0', 20_000, before)
    const resumed = first.events.length
    await feeder.send(50)
    await first.waitFor((e) => e.event === 'committed', 20_000, resumed)
    first.kill('SIGKILL')
    await first.exitCode('exit after SIGKILL', 10_000)
    assert.equal(await redis.exists(...stateKeys), PARTITIONS, 'the stores were flushed to Redis')

    await redis.unlink(...stateKeys)
    await feeder.send(400)
    const second = new Runner('redis-2', config)
    t.after(async () => second.kill('SIGKILL'))
    await feeder.sendMarkers(PARTITIONS, 'mid')
    let records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'mid') === PARTITIONS, 40_000)
    assert.equal(await second.stop(), 0, second.stderr)
    const fromZero = second.events.filter((e) => e.event === 'restored' && e.from === '0' && Number(e.records) > 0)
    assert.equal(
      new Set(fromZero.map((e) => e.partition)).size,
      PARTITIONS,
      `every partition restored from offset 0: ${JSON.stringify(fromZero)}`,
    )
    for (const done of fromZero) {
      const at = second.events.indexOf(done)
      const announced = second.events
        .slice(0, at)
        .findLast((e) => e.event === 'restoring' && e.store === done.store && e.partition === done.partition)
      assert.deepEqual(
        [announced?.from, announced?.to],
        [done.from, done.to],
        `a restoring event names the range before the replay: ${JSON.stringify(done)}`,
      )
    }
    assertExactlyOnce(records, feeder.sent)

    // Redis intact this time: the checkpoints are there, nothing is replayed from 0.
    await feeder.send(200)
    const third = new Runner('redis-3', config)
    t.after(async () => third.kill('SIGKILL'))
    await feeder.sendMarkers(PARTITIONS, 'end')
    records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 40_000)
    assert.equal(await third.stop(), 0, third.stderr)
    assert.equal(
      third.events.filter((e) => e.event === 'restored' && e.from === '0').length,
      0,
      'no restore from 0 with Redis intact',
    )
    assertExactlyOnce(records, feeder.sent)
  },
)

// The Redis store's flush compares the stored checkpoint itself (atomically with the write), so the
// runtime sends no checkpoint read of its own before it: this loss, after the commit and before the
// flush, is what that compare alone has to catch. Without it the flush would recreate each partition
// with one batch's keys under a valid-looking checkpoint, and the counts after it would be wrong.
test(
  'runtime redis loss: Redis loses the stores between a commit and its flush; the flush is refused (RS_STATE_LOST), the stores are restored from the changelog and the output is exact',
  { timeout: 90_000 },
  async (t) => {
    await checkKafka(endpoints)
    await checkRedis(endpoints.redisUrl)
    const { applicationId, input, output } = await countingTopics(t, 'rt-redis-flush', PARTITIONS)
    const redis = new Redis(endpoints.redisUrl)
    const stateKeys = Array.from({ length: PARTITIONS }, (_, p) => `rs:{${applicationId}:counts:${p}}:state`)
    const backend = new RedisStateBackend({ applicationId, target: { kind: 'single', url: endpoints.redisUrl } })
    t.after(async () => {
      await backend.close()
      await redis.unlink(...stateKeys).catch(() => {})
      redis.disconnect()
    })
    const store = backend.store('counts')
    assert.equal(store.flushComparesCheckpoints, true)

    const feeder = new InputFeeder(input, 15)
    t.after(() => feeder.close())
    await feeder.send(300)
    const events: RuntimeEvent[] = []
    let lost = 0
    const runtime = new KafkaRuntime(countingTopology({ applicationId, input, output }), {
      ...countingRuntimeOptions((e) => events.push(e), { batchMaxRecords: 50 }),
      stores: new Map([['counts', store]]),
      onBatchStage: async (stage) => {
        // Twice, after the 3rd and the 8th committed batch: between the commit and the flush.
        if (stage !== 'committed' || lost >= 2 || runtime.stats.batches < (lost === 0 ? 3 : 8)) return
        lost++
        await redis.unlink(...stateKeys)
      },
    })
    const running = runStopped(t, runtime, 'the runtime')
    await feeder.send(300)
    await feeder.sendMarkers(PARTITIONS, 'end')
    const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 45_000)
    runtime.stop()
    assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')

    assert.equal(lost, 2)
    const refused = events.filter(
      (e) => e.event === 'committed-then-failed' && e.code === 'RS_STATE_LOST' && e.recovery === 'restore',
    )
    assert.equal(refused.length, 2, `each loss refused at its flush: ${JSON.stringify(refused)}`)
    const fromZero = events.filter((e) => e.event === 'restored' && e.from === 0n)
    assert.ok(fromZero.length >= PARTITIONS, `restored from offset 0 after the loss: ${fromZero.length}`)
    assertExactlyOnce(records, feeder.sent)
  },
)
