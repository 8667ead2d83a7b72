// Zombie: a processor frozen (SIGSTOP) inside a transaction — after producing its outputs and sending
// its offsets, before committing — past its session and transaction timeouts, while another instance
// takes over. Resumed (SIGCONT), it must commit nothing: it is fenced and stops.
import { test } from 'node:test'
import assert from 'node:assert/strict'
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
import type { After } from '../support/runtime-waits.ts'

const PARTITIONS = 3

/**
 * Fresh topics with 300 input records; a zombie (instance a) that freezes (SIGSTOP) at `stage` of its
 * batch number `batches`; then a successor (instance b) that owns every task once the zombie's
 * session expired.
 */
async function zombieAndSuccessor(
  t: After,
  name: string,
  options: { stage: 'produced' | 'offsets-sent'; batches: number; transactionTimeoutMs: number },
) {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, name, PARTITIONS)
  const base: RunnerConfig = {
    brokers: [...endpoints.kafkaBrokers],
    applicationId,
    input,
    output,
    instanceId: 'a',
    store: 'memory',
    batchMaxRecords: 50,
    sessionTimeoutMs: 2_000,
    transactionTimeoutMs: options.transactionTimeoutMs,
  }
  const feeder = new InputFeeder(input, 12)
  t.after(() => feeder.close())
  await feeder.send(300)

  const zombie = new Runner('zombie', {
    ...base,
    instanceId: 'a',
    pauseAtStage: options.stage,
    pauseAfterBatches: options.batches,
  })
  t.after(async () => zombie.kill('SIGKILL'))
  await zombie.waitFor((e) => e.event === 'pausing', 30_000)
  const committedBeforePause = zombie.count('committed')
  const successor = new Runner('successor', { ...base, instanceId: 'b' })
  t.after(async () => successor.kill('SIGKILL'))
  await successor.waitFor(
    (e) => e.event === 'assigned' && Array.isArray(e.tasks) && e.tasks.length === PARTITIONS,
    30_000,
  )
  return { output, feeder, zombie, successor, committedBeforePause }
}

/** 300 more records and the end markers; both instances stopped; the committed output is exactly once, also as Kafka's own consumer reads it. */
async function assertExactlyOnceAtEnd(
  output: string,
  feeder: InputFeeder,
  zombie: Runner,
  successor: Runner,
): Promise<void> {
  await feeder.send(300)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 40_000)
  await zombie.stop()
  assert.equal(await successor.stop(), 0, successor.stderr)
  assert.equal(markersSeen(records, 'end'), PARTITIONS)
  assertExactlyOnce(records, feeder.sent)
  assertExactlyOnce(await readCommittedWithKafkaConsumer(output, records.length), feeder.sent)
}

test(
  'runtime zombie: an instance paused mid-transaction past its session timeout is fenced on resume and commits nothing visible',
  { timeout: 60_000 },
  async (t) => {
    const { output, feeder, zombie, successor } = await zombieAndSuccessor(t, 'rt-zombie', {
      stage: 'offsets-sent',
      batches: 2,
      transactionTimeoutMs: 4_000,
    })
    // The successor can commit once the coordinator has aborted the zombie's transaction (its offsets
    // were pending: require_stable waits).
    await feeder.send(300)
    await successor.waitFor((e) => e.event === 'committed', 30_000)

    zombie.kill('SIGCONT')
    let timer: NodeJS.Timeout | undefined
    const exit = await Promise.race([
      zombie.exited,
      new Promise((r) => (timer = setTimeout(() => r('still running'), 20_000))),
    ])
    clearTimeout(timer)
    assert.equal(exit, 3, `the resumed zombie stops as fenced; events: ${JSON.stringify(zombie.events.slice(-4))}`)
    assert.ok(zombie.events.some((e) => e.event === 'fenced'))

    await assertExactlyOnceAtEnd(output, feeder, zombie, successor)
  },
)

test(
  'runtime zombie: an instance paused after producing, before sending offsets, cannot commit its batch after a takeover',
  { timeout: 60_000 },
  async (t) => {
    const { output, feeder, zombie, successor, committedBeforePause } = await zombieAndSuccessor(t, 'rt-zombie2', {
      stage: 'produced',
      batches: 1,
      transactionTimeoutMs: 4_000,
    })
    await successor.waitFor((e) => e.event === 'committed', 30_000)

    // Resumed, the zombie tries to send its offsets under the old generation: refused (or it is fenced
    // because its transaction timed out meanwhile). Either way the paused batch never commits.
    zombie.kill('SIGCONT')
    await zombie.waitFor((e) => e.event === 'fenced' || e.event === 'batch-aborted', 20_000).catch(() => undefined)
    assert.ok(
      zombie.events.some((e) => e.event === 'fenced' || e.event === 'batch-aborted'),
      JSON.stringify(zombie.events.slice(-5)),
    )
    const resumedAt = zombie.events.findIndex((e) => e.event === 'resumed')
    const abortedAt = zombie.events.findIndex(
      (e, i) => i > resumedAt && (e.event === 'fenced' || e.event === 'batch-aborted'),
    )
    assert.ok(
      !zombie.events.slice(resumedAt, abortedAt).some((e) => e.event === 'committed'),
      'the paused batch did not commit',
    )
    assert.ok(zombie.count('committed') >= committedBeforePause)

    await assertExactlyOnceAtEnd(output, feeder, zombie, successor)
  },
)

test(
  'runtime zombie: an owner paused after sending its offsets that resumes and commits before its transaction times out: the new owner restores that batch too',
  { timeout: 60_000 },
  async (t) => {
    // The transaction timeout outlasts the takeover, so the resumed zombie's commit succeeds; the
    // successor owns every task and waits for the zombie's pending offsets.
    const { output, feeder, zombie, successor } = await zombieAndSuccessor(t, 'rt-zombie3', {
      stage: 'offsets-sent',
      batches: 1,
      transactionTimeoutMs: 30_000,
    })
    await successor.waitFor((e) => e.event === 'offsets-unstable', 20_000)
    const paused = zombie.events.length
    zombie.kill('SIGCONT')
    await zombie.waitFor((e) => e.event === 'committed', 20_000, paused)
    await successor.waitFor((e) => e.event === 'committed', 30_000)

    await assertExactlyOnceAtEnd(output, feeder, zombie, successor)
  },
)
