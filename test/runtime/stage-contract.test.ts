// A compiled topology whose stage breaks its contract, under the real Kafka runtime: the instance
// stops within seconds with RS_STAGE_CONTRACT_VIOLATED naming the stage (recovery 'stop'), the batch
// is never retried, nothing is committed — as the test driver reports it (test/operators/stage.test.ts).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkKafka } from '../../src/config/services.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { RagstreamError } from '../../src/errors.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { InputFeeder, readCommitted } from '../support/runtime-harness.ts'
import { deleteAfter, within } from '../support/runtime-waits.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const PARTITIONS = 2

test('a stage returning 0 results for 1 item stops the Kafka runtime within seconds with a coded error naming the stage', async (t) => {
  await checkKafka(endpoints)
  const applicationId = uniqueName('rt-contract')
  const input = `${applicationId}-in`
  const output = `${applicationId}-out`
  await createTopics(t, [input, output], PARTITIONS)
  await deleteAfter(t, [`${applicationId}-rows-changelog`, `${applicationId}-dead-letter`])
  let calls = 0
  const builder = new TopologyBuilder({ applicationId })
  builder
    .table<string>(input, {
      name: 'rows',
      decode: (key, value) => ({ key: key!.toString(), value: value?.toString() }),
    })
    .stage({
      name: 'enrich',
      kind: 'enrich',
      processor: {
        process: () => {
          calls++
          return []
        },
      },
    })
    .to(output)
  const processor = builder.build().compile({ partitions: PARTITIONS })
  const feeder = new InputFeeder(input, 4)
  t.after(() => feeder.close())
  await feeder.send(8)

  const events: RuntimeEvent[] = []
  const started = Date.now()
  const runtime = new KafkaRuntime(processor, {
    brokers: endpoints.kafkaBrokers,
    stores: new Map(processor.storeNames.map((name) => [name, new MemoryStateStore(name)])),
    sessionTimeoutMs: 3_000,
    transactionTimeoutMs: 10_000,
    fetchMaxWaitMs: 100,
    onEvent: (e: RuntimeEvent) => void events.push(e),
  })
  const outcome = await within(
    runtime.run().then(
      () => 'stopped',
      (e: unknown) => e,
    ),
    30_000,
    'the runtime to stop on its own',
  )
  const seconds = (Date.now() - started) / 1000
  assert.ok(outcome instanceof RagstreamError, `run() rejects with a coded error, got ${String(outcome)}`)
  assert.equal(outcome.code, 'RS_STAGE_CONTRACT_VIOLATED')
  assert.match(outcome.message, /stage 'enrich' returned 0 results for \d+ items?/)
  assert.equal(outcome.context.node, 'enrich')
  assert.ok(calls <= PARTITIONS, `the stage ran ${calls} times: a batch is never retried`)
  assert.ok(!events.some((e) => e.event === 'batch-aborted'), 'no abort-and-retry')
  assert.ok(seconds < 30, `stopped after ${seconds.toFixed(1)} s`)
  const committed = await readCommitted(output, PARTITIONS, () => false, 1_000)
  assert.deepEqual(committed, [], 'nothing was committed')
})
