// KNOWN BUG (open, issue 3): two LIVE instances started with the same --instance-id (a
// misconfiguration: the id is meant for a restarted instance to fence its dead predecessor) can lose
// input records. In 30-50% of runs under load, the fenced instance's last committed batches end up
// inside a transaction the broker later aborts (abort marker epoch 2), so read_committed readers never
// see them, yet their input offsets stay committed and the survivor skips those records
// (e.g. `key-1,18,10` where `key-1,10,10` was expected). Until it is fixed this reproduction lives
// outside the suite; run it with:
//   node_modules/.bin/node --test repro/fence-same-instance-id.test.ts
// and see repro/README.md.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkKafka } from '../src/config/services.ts'
import { RagstreamError } from '../src/errors.ts'
import { KafkaRuntime, type RuntimeEvent } from '../src/runtime/kafka-runtime.ts'
import { countingTopology } from '../test/support/counting-topology.ts'
import { MemoryStateStore } from '../src/state/memory-store.ts'
import { assertExactlyOnce, countingTopics, InputFeeder, markersSeen, readCommitted } from '../test/support/runtime-harness.ts'
import { endpoints } from '../test/support/stack.ts'
import { runStopped, until, within } from '../test/support/runtime-waits.ts'

const PARTITIONS = 3

test('runtime: two live instances given the same instance id fence each other until one stops with RS_PRODUCER_FENCED; the survivor stays exact', { timeout: 60_000 }, async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-fenced', PARTITIONS)
  const feeder = new InputFeeder(input, 6)
  t.after(() => feeder.close())
  let feeding = true
  const feeding$ = (async () => {
    while (feeding) {
      await feeder.send(10)
      await new Promise((r) => setTimeout(r, 50))
    }
  })()
  t.after(async () => {
    feeding = false
    await feeding$
  })

  const events: RuntimeEvent[][] = [[], []]
  const runtimes = events.map(
    (list) =>
      new KafkaRuntime(countingTopology({ applicationId, input, output }), {
        brokers: endpoints.kafkaBrokers,
        stores: new Map([['counts', new MemoryStateStore('counts')]]),
        instanceId: 'same',
        sessionTimeoutMs: 2_000,
        transactionTimeoutMs: 10_000,
        batchMaxRecords: 20,
        fetchMaxWaitMs: 100,
        onEvent: (e: RuntimeEvent) => {
          list.push(e)
          if (process.env.RT_DEBUG) console.log(events.indexOf(list), JSON.stringify(e, (_, v) => (typeof v === 'bigint' ? String(v) : v)))
        },
      }),
  )
  const outcomes: Promise<{ index: number; outcome: unknown }>[] = []
  outcomes.push(runStopped(t, runtimes[0], 'instance 0').then((outcome) => ({ index: 0, outcome })))
  await until('instance 0 to commit 2 batches', () => runtimes[0].stats.batches >= 2, 30_000)
  outcomes.push(runStopped(t, runtimes[1], 'instance 1').then((outcome) => ({ index: 1, outcome })))

  const first = await within(Promise.race(outcomes), 45_000, 'one of the two instances to stop fenced')
  assert.ok(first.outcome instanceof RagstreamError, `instance ${first.index}: ${String(first.outcome)}`)
  assert.equal(first.outcome.code, 'RS_PRODUCER_FENCED')
  assert.ok(events[first.index].some((e) => e.event === 'fenced'))
  const survivor = runtimes[1 - first.index]

  feeding = false
  await feeding$
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 30_000)
  survivor.stop()
  assert.equal((await within(outcomes[1 - first.index], 30_000, 'the survivor to stop')).outcome, 'stopped')
  assertExactlyOnce(records, feeder.sent)
})
