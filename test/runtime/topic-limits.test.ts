// The broker's own record limit (a topic's max.message.bytes) is checked before producing, not only
// the runtime's maxRecordBytes: a topic configured below it must neither stall the partition on a
// MESSAGE_TOO_LARGE retried forever nor stop the instance. One record over the topic's limit is
// dead-lettered like one over maxRecordBytes, naming the topic, the limit and the size; and a batch of
// small records for that topic goes out in sends the broker accepts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkKafka } from '../../src/config/services.ts'
import { DEAD_LETTER_HEADERS } from '../../src/runtime/dead-letter.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { ProcessorTopology, SinkRecord } from '../../src/runtime/task.ts'
import { countingTopology } from '../support/counting-topology.ts'
import { countingRuntimeOptions, InputFeeder, markersSeen, readCommitted } from '../support/runtime-harness.ts'
import { deleteAfter, runStopped, within } from '../support/runtime-waits.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const PARTITIONS = 2
const TOPIC_LIMIT = 4096

/** Fresh input and dead-letter topics, and `limited` created with max.message.bytes = TOPIC_LIMIT. */
async function topics(t: { after: (fn: () => Promise<void>) => void }, prefix: string, limited: 'out' | 'changelog') {
  const applicationId = uniqueName(prefix)
  const input = `${applicationId}-in`
  const output = `${applicationId}-out`
  const changelog = `${applicationId}-counts-changelog`
  const deadLetters = `${applicationId}-dead-letter`
  const limit = [{ name: 'max.message.bytes', value: String(TOPIC_LIMIT) }]
  await createTopics(t, [input], PARTITIONS)
  await createTopics(t, [output], PARTITIONS, limited === 'out' ? limit : [])
  // The runtime creates a missing changelog; one created beforehand keeps its settings.
  if (limited === 'changelog')
    await createTopics(t, [changelog], PARTITIONS, [{ name: 'cleanup.policy', value: 'compact' }, ...limit])
  else await deleteAfter(t, [changelog])
  await deleteAfter(t, [deadLetters])
  return { applicationId, input, output, deadLetters }
}

const options = (events: RuntimeEvent[]) => countingRuntimeOptions((e) => void events.push(e))

test("topic limits: an output above its topic's max.message.bytes (below maxRecordBytes) is dead-lettered naming topic, limit and size; small outputs to it go out in sends it accepts", async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output, deadLetters } = await topics(t, 'lim-out', 'out')
  const feeder = new InputFeeder(input, 4)
  t.after(() => feeder.close())
  await feeder.send(400)
  const counting = countingTopology({ applicationId, input, output })
  const topology: ProcessorTopology = {
    ...counting,
    topics: [...counting.topics, { name: deadLetters, role: 'dead-letter', config: {} }],
    async process(records, stores, now) {
      const out = await counting.process(records, stores, now)
      // Every output is 300 bytes (a batch's outputs for one partition are far above the topic's
      // limit together); key-1's 7th is 10 kB: above the topic's limit, far below maxRecordBytes.
      return out.map((o, i): SinkRecord => {
        const text = o.value!.toString()
        if (o.key?.toString() === '__marker__') return o
        const size = text.startsWith('key-1,7,') ? 10_000 : 300
        return { ...o, value: Buffer.from(text.padEnd(size, '.')), source: records[i] }
      })
    },
  }
  const events: RuntimeEvent[] = []
  const runtime = new KafkaRuntime(topology, options(events))
  const running = runStopped(t, runtime, 'the runtime')
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 45_000)
  const dead = await readCommitted(deadLetters, PARTITIONS, (r) => r.length >= 1, 10_000)
  runtime.stop()
  assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')

  // Nothing refused by the broker: no stop, and no batch aborted over a size (a rebalance may abort one).
  const refused = events.filter(
    (e) => e.event === 'fatal' || (e.event === 'batch-aborted' && /too large/i.test(e.error)),
  )
  assert.deepEqual(refused, [])
  assert.equal(dead.length, 1)
  const header = (name: string): string | undefined => dead[0].headers.get(name)?.toString()
  assert.equal(header(DEAD_LETTER_HEADERS.code), 'RS_RECORD_TOO_LARGE')
  assert.equal(header(DEAD_LETTER_HEADERS.outputTopic), output)
  assert.ok(Number(header(DEAD_LETTER_HEADERS.outputBytes)) > 10_000)
  assert.match(header(DEAD_LETTER_HEADERS.message) ?? '', new RegExp(`max\\.message\\.bytes ${TOPIC_LIMIT}`))
  assert.equal(header(DEAD_LETTER_HEADERS.topic), input)
  const got = records.filter((r) => r.key?.toString() !== '__marker__')
  assert.equal(got.length, feeder.total - 1, 'every other output arrived')
  assert.ok(got.every((r) => r.value!.length === 300))
})

test("topic limits: a state value above its changelog's max.message.bytes is found record by record and dead-lettered", async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output, deadLetters } = await topics(t, 'lim-state', 'changelog')
  const feeder = new InputFeeder(input, 4)
  t.after(() => feeder.close())
  await feeder.send(100)
  const counting = countingTopology({ applicationId, input, output })
  const topology: ProcessorTopology = {
    ...counting,
    topics: [...counting.topics, { name: deadLetters, role: 'dead-letter', config: {} }],
    async process(records, stores, now) {
      const out = await counting.process(records, stores, now)
      // key-2's 3rd record writes a 10 kB state value: above the changelog's limit, below maxRecordBytes.
      for (const r of records)
        if (r.key?.toString() === 'key-2' && r.value?.toString() === '3')
          stores.get('counts')!.put(r.partition, 'key-2', Buffer.alloc(10_000, 'y'))
      return out
    },
  }
  const events: RuntimeEvent[] = []
  const runtime = new KafkaRuntime(topology, options(events))
  const running = runStopped(t, runtime, 'the runtime')
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 45_000)
  const dead = await readCommitted(deadLetters, PARTITIONS, (r) => r.length >= 1, 10_000)
  runtime.stop()
  assert.equal(await within(running, 30_000, 'the runtime to stop'), 'stopped')

  assert.ok(events.some((e) => e.event === 'isolating-records'))
  assert.ok(!events.some((e) => e.event === 'fatal'), 'the instance did not stop')
  assert.equal(dead.length, 1)
  assert.equal(dead[0].headers.get(DEAD_LETTER_HEADERS.code)?.toString(), 'RS_RECORD_TOO_LARGE')
  assert.equal(dead[0].key?.toString(), 'key-2')
  assert.match(
    dead[0].headers.get(DEAD_LETTER_HEADERS.message)?.toString() ?? '',
    new RegExp(`counts-changelog.*max\\.message\\.bytes ${TOPIC_LIMIT}`),
  )
  const values = records.map((r) => r.value?.toString() ?? '')
  assert.ok(!values.some((v) => v.startsWith('key-2,3,')))
  assert.ok(values.includes('key-2,4,3'), 'key-2 #4 counts 3: the dead-lettered record left no state')
})
