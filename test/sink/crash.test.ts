// Crash test: the sink in a child process is SIGKILLed at random points (including right as a
// batch's Postgres transaction starts) while transactional chunk events keep arriving; afterwards
// the table is exactly the last committed value per chunk id: 0 missing, 0 extra, 0 stale.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { chunkProducer, createSinkEnv, diffTable, spawnSink, startProduction, waitForCatchUp } from './support.ts'

const PARTITIONS = 2
const KILLS = 6

test(`crash: SIGKILL ${KILLS}× (half of them as a batch transaction starts) while events keep arriving — table == last committed value per chunk id`, async (t) => {
  const env = await createSinkEnv(t, { dims: 16, partitions: PARTITIONS, batchLingerMs: 50 })
  const { config } = env
  const production = startProduction(await chunkProducer(t, config), config, { ids: 300, partitions: PARTITIONS })
  // Static membership: each restart takes the partitions back without waiting for a session timeout.
  const args = ['--instance-id', `crash-${env.suffix}`, '--batch-size', '300']
  let killedInsideBatch = 0
  let largestBatch = 0
  for (let round = 0; round < KILLS; round++) {
    const sink = spawnSink(t, env, args)
    await sink.waitForEvent((e) => e.event === 'assigned' && (e.partitions as number[]).length > 0, 90_000)
    if (round % 2 === 0) {
      // Mid-commit: kill the moment a batch transaction starts (after one committed batch this round).
      await sink.waitForEvent((e) => e.event === 'batch-committed', 60_000)
      await new Promise<void>((resolve) =>
        sink.onEvent((e) => {
          if (e.event === 'batch-begin') {
            sink.child.kill('SIGKILL')
            resolve()
          }
        }),
      )
    } else {
      await sleep(300 + Math.random() * 2500)
      sink.child.kill('SIGKILL')
    }
    await sink.exitCode('exit after SIGKILL', 10_000)
    if (sink.events.at(-1)?.event === 'batch-begin') killedInsideBatch++
    for (const e of sink.events)
      if (e.event === 'batch-begin') largestBatch = Math.max(largestBatch, e.records as number)
  }
  await production.stop()

  const final = spawnSink(t, env, args)
  await waitForCatchUp(env.admin, config, PARTITIONS)
  final.child.kill('SIGTERM')
  assert.equal(await final.exitCode('the final sink after SIGTERM'), 0, final.stderr())

  const diff = await diffTable(env.admin, config, production.expected)
  assert.deepEqual(
    { missing: diff.missing, extra: diff.extra, stale: diff.stale },
    { missing: [], extra: [], stale: [] },
  )
  assert.ok(production.counts.committed > 0)
  for (const e of final.events)
    if (e.event === 'batch-begin') largestBatch = Math.max(largestBatch, e.records as number)
  assert.ok(largestBatch <= 300, `batches are capped at --batch-size (largest: ${largestBatch})`)
  assert.ok(killedInsideBatch >= KILLS / 2, `${killedInsideBatch} kills landed between batch-begin and batch-committed`)
  t.diagnostic(
    `${production.counts.committed} committed events (${production.counts.abortedTransactions} aborted transactions), ${diff.rows} rows, ${KILLS} kills (${killedInsideBatch} inside a batch transaction), largest batch ${largestBatch} records`,
  )
})
