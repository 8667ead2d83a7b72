// A service going away while the processor runs is named in its log: RS_SERVICE_UNAVAILABLE, which
// service, its address with the password masked, and a hint; the batch is retried until the service
// is back, nothing is skipped. Redis here is the test's own (killed and restarted empty, as a server
// without persistence), so the shared one is never touched. Kafka going away is covered by
// test/runtime/broker-restart.test.ts (processor) and test/sink/kafka-down.test.ts (sink), PostgreSQL
// under the sink by test/sink/postgres-server-restart.test.ts, the registry by test/sink/registry-down.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkKafka } from '../../src/config/services.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { eventWriter } from '../../src/observability/event-log.ts'
import { countingTopology } from '../support/counting-topology.ts'
import { startPrivateRedis } from '../support/private-redis.ts'
import {
  assertExactlyOnce,
  countingTopics,
  InputFeeder,
  markersSeen,
  readCommitted,
} from '../support/runtime-harness.ts'
import { runStopped, until, within } from '../support/runtime-waits.ts'
import { endpoints } from '../support/stack.ts'

const PARTITIONS = 2
const PASSWORD = 'hunter2-never-shown'

test('redis killed mid-run: every retried batch names Redis at its masked URL with a hint; restarted empty, the stores are restored and the output is exact', async (t) => {
  await checkKafka(endpoints)
  const redis = await startPrivateRedis(PASSWORD)
  t.after(() => redis.stop())
  const { applicationId, input, output } = await countingTopics(t, 'rt-redis-down', PARTITIONS)
  const backend = new RedisStateBackend({
    applicationId,
    target: { kind: 'single', url: redis.url },
    operationTimeoutMs: 2_000,
  })
  const feeder = new InputFeeder(input, 8)
  t.after(() => feeder.close())
  await feeder.send(200)

  const events: RuntimeEvent[] = []
  // What `ragstream run` writes: the log lines, as a person or a log shipper sees them.
  const lines: string[] = []
  const write = eventWriter({ write: (line: string) => lines.push(line) } as unknown as NodeJS.WritableStream, {
    RAGSTREAM_LOG_FORMAT: 'json',
  })
  const runtime = new KafkaRuntime(countingTopology({ applicationId, input, output }), {
    brokers: endpoints.kafkaBrokers,
    stores: new Map([['counts', backend.store('counts')]]),
    sessionTimeoutMs: 6_000,
    transactionTimeoutMs: 10_000,
    batchMaxRecords: 50,
    fetchMaxWaitMs: 100,
    onEvent: (e) => {
      events.push(e)
      write(e)
    },
  })
  const running = runStopped(t, runtime, 'the runtime')
  await until('a first batch', () => runtime.stats.batches > 0, 30_000)

  await redis.kill()
  await feeder.send(100)
  const unavailable = (e: RuntimeEvent): boolean =>
    (e.event === 'batch-aborted' || e.event === 'flush-retry') && 'service' in e && e.service !== undefined
  await until('a batch to fail on Redis', () => events.filter(unavailable).length >= 2, 30_000)
  await redis.start()
  await feeder.send(100)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 90_000)
  assertExactlyOnce(records, feeder.sent)
  assert.equal(await Promise.race([running, Promise.resolve('running')]), 'running', 'the processor never stopped')

  const address = redis.url.replace(PASSWORD, '***')
  for (const e of events.filter(unavailable)) {
    assert.ok(e.event === 'batch-aborted' || e.event === 'flush-retry')
    if (e.event === 'batch-aborted') {
      assert.equal(e.code, 'RS_SERVICE_UNAVAILABLE')
      assert.equal(e.recovery, 'retry')
    }
    assert.equal(e.service, 'Redis')
    assert.equal(e.address, address)
    assert.ok(e.error.startsWith(`Redis is not reachable at ${address}`), e.error)
    assert.match(e.hint ?? '', /retried with backoff, nothing is skipped: check that Redis is up/)
  }
  assert.ok(
    events.some((e) => e.event === 'restored' && e.cleared),
    'the empty Redis was restored from the changelogs',
  )
  assert.ok(lines.length > 0 && lines.every((line) => !line.includes('hunter2')), 'no log line shows the password')
  assert.ok(lines.some((line) => line.includes('"service":"Redis"')))

  runtime.stop()
  assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')
})
