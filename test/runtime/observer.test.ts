// The runtime's onEvent observer is the caller's code. A throwing one — JSON.stringify of an event that
// carries bigint offsets, as a docs example once did — aborted every assignment and retried forever,
// processing nothing; now the events keep coming and the records flow exactly once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { KafkaRuntime } from '../../src/runtime/kafka-runtime.ts'
import { countingTopology } from '../support/counting-topology.ts'
import {
  assertExactlyOnce,
  countingRuntimeOptions,
  countingTopics,
  InputFeeder,
  markersSeen,
  readCommitted,
} from '../support/runtime-harness.ts'
import { runStopped, within } from '../support/runtime-waits.ts'

const PARTITIONS = 3

test('runtime: an onEvent observer that throws (JSON.stringify of bigint offsets) changes nothing: no abort, records exactly once', async (t) => {
  const { applicationId, input, output } = await countingTopics(t, 'rt-observer', PARTITIONS)
  const feeder = new InputFeeder(input, 12)
  t.after(() => feeder.close())
  await feeder.send(300)
  const seen: string[] = []
  const runtime = new KafkaRuntime(
    countingTopology({ applicationId, input, output }),
    countingRuntimeOptions((e) => {
      seen.push(e.event)
      JSON.stringify(e) // throws on the events that carry bigints
    }),
  )
  const running = runStopped(t, runtime, 'the runtime')
  await feeder.send(300)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 30_000)
  runtime.stop()
  assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')
  assertExactlyOnce(records, feeder.sent)
  assert.ok(seen.includes('restored'), `the observer saw the events that throw: ${[...new Set(seen)].join(', ')}`)
  assert.equal(runtime.stats.aborts, 0, 'no batch or assignment aborted for the observer')
})
