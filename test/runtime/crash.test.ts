// Crash test: the processor runs in a child process and is SIGKILLed at random points while input
// keeps flowing; the committed output must still be exact, and an end marker readable.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Admin } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { assertExactlyOnce, InputFeeder, markersSeen, readCommitted, Runner } from '../support/runtime-harness.ts'
import type { RunnerConfig } from '../support/runtime-runner.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const PARTITIONS = 3
const KILLS = 6

test('runtime crash: SIGKILL at random points 6 times while input flows — 0 lost, 0 duplicated, nothing aborted visible, no hanging transaction', { timeout: 110_000 }, async (t) => {
  await checkKafka(endpoints)
  const applicationId = uniqueName('rt-crash')
  const input = `${applicationId}-in`
  const output = `${applicationId}-out`
  await createTopics(t, [input, output], PARTITIONS)
  t.after(async () => {
    const admin = new Admin({ clientId: uniqueName('cleanup'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    await admin.deleteTopics({ topics: [`${applicationId}-counts-changelog`] }).catch(() => {})
    await admin.close()
  })
  const config: RunnerConfig = { brokers: [...endpoints.kafkaBrokers], applicationId, input, output, instanceId: 'only', store: 'memory', batchMaxRecords: 50 }

  const feeder = new InputFeeder(input, 20)
  t.after(() => feeder.close())
  let feeding = true
  const feeding$ = (async () => {
    while (feeding) {
      await feeder.send(25)
      await new Promise((r) => setTimeout(r, 50))
    }
  })()

  const runners: Runner[] = []
  t.after(async () => {
    for (const r of runners) r.kill('SIGKILL')
  })
  const killedAt: string[] = []
  for (let i = 0; i < KILLS; i++) {
    const runner = new Runner(`crash-${i}`, config)
    runners.push(runner)
    // Kill somewhere in restore, in a batch, or between batches: after the first commit of this
    // incarnation, plus a random delay.
    await runner.waitFor((e) => e.event === 'committed', 30_000)
    const delay = Math.floor(Math.random() * 700)
    await new Promise((r) => setTimeout(r, delay))
    killedAt.push(`${runner.count('committed')} batches +${delay}ms`)
    runner.kill('SIGKILL')
    await runner.exited
  }
  feeding = false
  await feeding$
  t.diagnostic(`killed after: ${killedAt.join(', ')}; input records: ${feeder.total}`)

  const last = new Runner('crash-final', config)
  runners.push(last)
  await feeder.sendMarkers(PARTITIONS, 'end')
  const records = await readCommitted(output, PARTITIONS, (r) => markersSeen(r, 'end') === PARTITIONS, 60_000)
  assert.equal(await last.stop(), 0, last.stderr)

  assert.equal(markersSeen(records, 'end'), PARTITIONS, 'the end marker of every partition is readable: no transaction hangs')
  assertExactlyOnce(records, feeder.sent)
})
