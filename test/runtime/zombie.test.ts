// Zombie: a processor frozen (SIGSTOP) inside a transaction — after producing its outputs and sending
// its offsets, before committing — past its session and transaction timeouts, while another instance
// takes over. Resumed (SIGCONT), it must commit nothing: it is fenced and stops.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkKafka } from '../../src/config/services.ts'
import { assertExactlyOnce, countingTopics, InputFeeder, markersSeen, readCommitted, readCommittedWithKafkaConsumer, Runner } from '../support/runtime-harness.ts'
import type { RunnerConfig } from '../support/runtime-runner.ts'
import { endpoints } from '../support/stack.ts'

const PARTITIONS = 3

test('runtime zombie: an instance paused mid-transaction past its session timeout is fenced on resume and commits nothing visible', { timeout: 60_000 }, async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-zombie', PARTITIONS)
  const base: RunnerConfig = { brokers: [...endpoints.kafkaBrokers], applicationId, input, output, instanceId: 'a', store: 'memory', batchMaxRecords: 50, sessionTimeoutMs: 2_000, transactionTimeoutMs: 4_000 }

  const feeder = new InputFeeder(input, 12)
  t.after(() => feeder.close())
  await feeder.send(300)

  const zombie = new Runner('zombie', { ...base, instanceId: 'a', pauseAtStage: 'offsets-sent', pauseAfterBatches: 2 })
  t.after(async () => zombie.kill('SIGKILL'))
  await zombie.waitFor((e) => e.event === 'pausing', 30_000)
  const successor = new Runner('successor', { ...base, instanceId: 'b' })
  t.after(async () => successor.kill('SIGKILL'))

  // The successor takes every task once the zombie's session expires, and can commit once the
  // coordinator has aborted the zombie's transaction (its offsets were pending: require_stable waits).
  await successor.waitFor((e) => e.event === 'assigned' && Array.isArray(e.tasks) && e.tasks.length === PARTITIONS, 30_000)
  await feeder.send(300)
  await successor.waitFor((e) => e.event === 'committed', 30_000)

  zombie.kill('SIGCONT')
  let timer: NodeJS.Timeout | undefined
  const exit = await Promise.race([zombie.exited, new Promise((r) => (timer = setTimeout(() => r('still running'), 20_000)))])
  clearTimeout(timer)
  assert.equal(exit, 3, `the resumed zombie stops as fenced; events: ${JSON.stringify(zombie.events.slice(-4))}`)
  assert.ok(zombie.events.some((e) => e.event === 'fenced'))

  await feeder.send(300)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 40_000)
  assert.equal(await successor.stop(), 0, successor.stderr)
  assert.equal(markersSeen(records, 'end'), PARTITIONS)
  assertExactlyOnce(records, feeder.sent)
  assertExactlyOnce(await readCommittedWithKafkaConsumer(output, records.length), feeder.sent)
})

test('runtime zombie: an instance paused after producing, before sending offsets, cannot commit its batch after a takeover', { timeout: 60_000 }, async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-zombie2', PARTITIONS)
  const base: RunnerConfig = { brokers: [...endpoints.kafkaBrokers], applicationId, input, output, instanceId: 'a', store: 'memory', batchMaxRecords: 50, sessionTimeoutMs: 2_000, transactionTimeoutMs: 4_000 }
  const feeder = new InputFeeder(input, 12)
  t.after(() => feeder.close())
  await feeder.send(300)

  const zombie = new Runner('zombie', { ...base, instanceId: 'a', pauseAtStage: 'produced', pauseAfterBatches: 1 })
  t.after(async () => zombie.kill('SIGKILL'))
  await zombie.waitFor((e) => e.event === 'pausing', 30_000)
  const committedBeforePause = zombie.count('committed')
  const successor = new Runner('successor', { ...base, instanceId: 'b' })
  t.after(async () => successor.kill('SIGKILL'))
  await successor.waitFor((e) => e.event === 'assigned' && Array.isArray(e.tasks) && e.tasks.length === PARTITIONS, 30_000)
  await successor.waitFor((e) => e.event === 'committed', 30_000)

  // Resumed, the zombie tries to send its offsets under the old generation: refused (or it is fenced
  // because its transaction timed out meanwhile). Either way the paused batch never commits.
  zombie.kill('SIGCONT')
  await zombie.waitFor((e) => e.event === 'fenced' || e.event === 'batch-aborted', 20_000).catch(() => undefined)
  assert.ok(zombie.events.some((e) => e.event === 'fenced' || e.event === 'batch-aborted'), JSON.stringify(zombie.events.slice(-5)))
  const resumedAt = zombie.events.findIndex((e) => e.event === 'resumed')
  const abortedAt = zombie.events.findIndex((e, i) => i > resumedAt && (e.event === 'fenced' || e.event === 'batch-aborted'))
  assert.ok(!zombie.events.slice(resumedAt, abortedAt).some((e) => e.event === 'committed'), 'the paused batch did not commit')
  assert.ok(zombie.count('committed') >= committedBeforePause)

  await feeder.send(300)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 40_000)
  await zombie.stop()
  assert.equal(await successor.stop(), 0, successor.stderr)
  assert.equal(markersSeen(records, 'end'), PARTITIONS)
  assertExactlyOnce(records, feeder.sent)
  assertExactlyOnce(await readCommittedWithKafkaConsumer(output, records.length), feeder.sent)
})

test('runtime zombie: an owner paused after sending its offsets that resumes and commits before its transaction times out: the new owner restores that batch too', { timeout: 60_000 }, async (t) => {
  await checkKafka(endpoints)
  const { applicationId, input, output } = await countingTopics(t, 'rt-zombie3', PARTITIONS)
  // The transaction timeout outlasts the takeover, so the resumed zombie's commit succeeds.
  const base: RunnerConfig = { brokers: [...endpoints.kafkaBrokers], applicationId, input, output, instanceId: 'a', store: 'memory', batchMaxRecords: 50, sessionTimeoutMs: 2_000, transactionTimeoutMs: 30_000 }
  const feeder = new InputFeeder(input, 12)
  t.after(() => feeder.close())
  await feeder.send(300)

  const zombie = new Runner('zombie', { ...base, instanceId: 'a', pauseAtStage: 'offsets-sent', pauseAfterBatches: 1 })
  t.after(async () => zombie.kill('SIGKILL'))
  await zombie.waitFor((e) => e.event === 'pausing', 30_000)
  const successor = new Runner('successor', { ...base, instanceId: 'b' })
  t.after(async () => successor.kill('SIGKILL'))
  // The successor owns every task once the zombie's session expired, and waits for the zombie's pending offsets.
  await successor.waitFor((e) => e.event === 'assigned' && Array.isArray(e.tasks) && e.tasks.length === PARTITIONS, 30_000)
  await successor.waitFor((e) => e.event === 'offsets-unstable', 20_000)
  const paused = zombie.events.length
  zombie.kill('SIGCONT')
  await zombie.waitFor((e) => e.event === 'committed', 20_000, paused)
  await successor.waitFor((e) => e.event === 'committed', 30_000)

  await feeder.send(300)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 40_000)
  await zombie.stop()
  assert.equal(await successor.stop(), 0, successor.stderr)
  assert.equal(markersSeen(records, 'end'), PARTITIONS)
  assertExactlyOnce(records, feeder.sent)
  assertExactlyOnce(await readCommittedWithKafkaConsumer(output, records.length), feeder.sent)
})
