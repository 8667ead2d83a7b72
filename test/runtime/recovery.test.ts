// The runtime's failure path consults one decision (classifyError): a stop-class error stops the
// instance at once with its code, an unclassified one is retried from the committed offsets, and an
// output too large to produce dead-letters its source record while the partition moves on.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkKafka } from '../../src/config/services.ts'
import { RagstreamError } from '../../src/errors.ts'
import { DEAD_LETTER_HEADERS } from '../../src/runtime/dead-letter.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { ProcessorTopology, SinkRecord } from '../../src/runtime/task.ts'
import { countingTopology } from '../support/counting-topology.ts'
import {
  assertExactlyOnce,
  countingRuntimeOptions,
  countingTopics,
  InputFeeder,
  markersSeen,
  readCommitted,
} from '../support/runtime-harness.ts'
import { deleteAfter, runStopped, within } from '../support/runtime-waits.ts'
import { endpoints } from '../support/stack.ts'

const PARTITIONS = 2

const options = (events: RuntimeEvent[]) => countingRuntimeOptions((e) => void events.push(e), { batchMaxRecords: 50 })

test('recovery: a stage contract violation stops the instance within seconds with its code; no retry loop', async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-stop', PARTITIONS)
  const feeder = new InputFeeder(input, 4)
  t.after(() => feeder.close())
  await feeder.send(20)
  const counting = countingTopology({ applicationId, input, output })
  let calls = 0
  const topology: ProcessorTopology = {
    ...counting,
    async process(records, stores, now) {
      if (++calls > 0)
        throw new RagstreamError('RS_STAGE_CONTRACT_VIOLATED', "stage 'enrich' returned 0 results for 1 item", {
          context: { node: 'enrich' },
        })
      return counting.process(records, stores, now)
    },
  }
  const events: RuntimeEvent[] = []
  const started = Date.now()
  const outcome = await within(
    new KafkaRuntime(topology, options(events)).run().then(
      () => 'stopped',
      (e: unknown) => e,
    ),
    20_000,
    'the runtime to stop on its own',
  )
  assert.ok(outcome instanceof RagstreamError, `run() rejects with a coded error, got ${String(outcome)}`)
  assert.equal(outcome.code, 'RS_STAGE_CONTRACT_VIOLATED')
  assert.match(outcome.message, /enrich/)
  assert.equal(calls, 1, 'the batch is never retried')
  assert.ok(Date.now() - started < 20_000)
  assert.ok(!events.some((e) => e.event === 'batch-aborted'))
  const fatal = events.find((e) => e.event === 'fatal')
  assert.ok(
    fatal && fatal.event === 'fatal' && fatal.recovery === 'stop' && fatal.code === 'RS_STAGE_CONTRACT_VIOLATED',
  )
})

test('recovery: an unclassified error is retried from the committed offsets (reported without a code), exactly once', async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-retry', PARTITIONS)
  const feeder = new InputFeeder(input, 6)
  t.after(() => feeder.close())
  await feeder.send(200)
  const counting = countingTopology({ applicationId, input, output })
  let failures = 0
  const topology: ProcessorTopology = {
    ...counting,
    async process(records, stores, now) {
      const out = await counting.process(records, stores, now)
      if (failures < 2) {
        failures++
        throw new Error('a blip nobody classified')
      }
      return out
    },
  }
  const events: RuntimeEvent[] = []
  const runtime = new KafkaRuntime(topology, options(events))
  const running = runStopped(t, runtime, 'the runtime')
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 30_000)
  runtime.stop()
  assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')
  const aborted = events.filter((e) => e.event === 'batch-aborted')
  assert.equal(aborted.length, 2)
  for (const e of aborted) {
    assert.ok(e.event === 'batch-aborted')
    assert.equal(e.recovery, 'retry')
    assert.equal(e.phase, 'process')
    assert.equal(e.code, undefined, 'unclassified')
  }
  assertExactlyOnce(records, feeder.sent)
})

test('recovery: an output above maxRecordBytes dead-letters its source record with an excerpt; the partition moves on', async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-large', PARTITIONS)
  const deadLetters = `${applicationId}-dead-letter`
  await deleteAfter(t, [deadLetters])
  const feeder = new InputFeeder(input, 5)
  t.after(() => feeder.close())
  await feeder.send(100)
  const counting = countingTopology({ applicationId, input, output })
  const huge = Buffer.alloc(50_000, 'x')
  const topology: ProcessorTopology = {
    ...counting,
    topics: [...counting.topics, { name: deadLetters, role: 'dead-letter', config: {} }],
    async process(records, stores, now) {
      const out = await counting.process(records, stores, now)
      // key-3's 4th record grows 50 kB on the way (as invalid UTF-8 grows on decode).
      return out.map((o, i): SinkRecord => {
        const text = o.value?.toString() ?? ''
        return text.startsWith('key-3,4,') ? { ...o, value: Buffer.concat([o.value!, huge]), source: records[i] } : o
      })
    },
  }
  const events: RuntimeEvent[] = []
  const runtime = new KafkaRuntime(topology, { ...options(events), maxRecordBytes: 10_000, deadLetterExcerptBytes: 32 })
  const running = runStopped(t, runtime, 'the runtime')
  await feeder.send(100)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 30_000)
  const dead = await readCommitted(deadLetters, PARTITIONS, (r) => r.length >= 1, 10_000)
  runtime.stop()
  assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')

  assert.equal(dead.length, 1)
  const [letter] = dead
  const header = (name: string): string | undefined => letter.headers.get(name)?.toString()
  assert.equal(letter.value, null, 'never the value itself')
  assert.equal(header(DEAD_LETTER_HEADERS.code), 'RS_RECORD_TOO_LARGE')
  assert.equal(header(DEAD_LETTER_HEADERS.outputTopic), output)
  assert.ok(Number(header(DEAD_LETTER_HEADERS.outputBytes)) > 50_000)
  assert.equal(letter.headers.get(DEAD_LETTER_HEADERS.excerpt)?.length, 32)
  assert.equal(header(DEAD_LETTER_HEADERS.topic), input)
  assert.match(header(DEAD_LETTER_HEADERS.message) ?? '', /above maxRecordBytes 10000/)
  assert.ok(header(DEAD_LETTER_HEADERS.hint))
  assert.ok(events.some((e) => e.event === 'output-dead-lettered' && e.source?.topic === input))
  assert.equal(runtime.stats.deadLettered, 1)

  // Everything else went through exactly once; the dead-lettered record is the only one missing.
  const got = records.filter((r) => r.key?.toString() !== '__marker__')
  assert.equal(got.length, feeder.total - 1)
  assert.ok(!got.some((r) => r.value?.toString().startsWith('key-3,4,')))
  assert.ok(
    got.some((r) => r.value?.toString().startsWith('key-3,5,')),
    'the partition moved on',
  )
})

test('recovery: a record whose state is too large for its changelog is found by re-reading its batch record by record and dead-lettered with none of its effects', async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-state', PARTITIONS)
  const deadLetters = `${applicationId}-dead-letter`
  await deleteAfter(t, [deadLetters])
  const feeder = new InputFeeder(input, 5)
  t.after(() => feeder.close())
  await feeder.send(100)
  const counting = countingTopology({ applicationId, input, output })
  const huge = Buffer.alloc(50_000, 'y')
  const topology: ProcessorTopology = {
    ...counting,
    topics: [...counting.topics, { name: deadLetters, role: 'dead-letter', config: {} }],
    async process(records, stores, now) {
      const out = await counting.process(records, stores, now)
      // key-2's 3rd record writes a 50 kB state value (a row that grew on decode).
      for (const r of records)
        if (r.key?.toString() === 'key-2' && r.value?.toString() === '3')
          stores.get('counts')!.put(r.partition, 'key-2', huge)
      return out
    },
  }
  const events: RuntimeEvent[] = []
  const runtime = new KafkaRuntime(topology, { ...options(events), maxRecordBytes: 10_000 })
  const running = runStopped(t, runtime, 'the runtime')
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 30_000)
  const dead = await readCommitted(deadLetters, PARTITIONS, (r) => r.length >= 1, 10_000)
  runtime.stop()
  assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')

  assert.ok(events.some((e) => e.event === 'isolating-records'))
  assert.ok(!events.some((e) => e.event === 'fatal'), 'the instance did not stop')
  assert.equal(dead.length, 1)
  const [letter] = dead
  assert.equal(letter.headers.get(DEAD_LETTER_HEADERS.code)?.toString(), 'RS_RECORD_TOO_LARGE')
  assert.equal(letter.headers.get(DEAD_LETTER_HEADERS.topic)?.toString(), input)
  assert.equal(letter.key?.toString(), 'key-2', 'the source record key')
  assert.equal(letter.value, null)
  // None of its effects: no output for key-2 #3, and key-2's count goes on from 2.
  const values = records.map((r) => r.value?.toString() ?? '')
  assert.ok(!values.some((v) => v.startsWith('key-2,3,')))
  assert.ok(values.includes('key-2,4,3'), 'key-2 #4 counts 3: the dead-lettered record left no state')
  assert.equal(records.filter((r) => r.key?.toString() !== '__marker__').length, feeder.total - 1)
})
