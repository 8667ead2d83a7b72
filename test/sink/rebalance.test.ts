// Two sink instances share a 4-partition chunk topic while events keep arriving: partitions move
// between them on every join and crash, each move claims afresh from the stored offsets, and the
// table ends exact.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { chunkProducer, createSinkEnv, diffTable, spawnSink, startProduction, waitForCatchUp } from './support.ts'

const PARTITIONS = 4

test('rebalance: instances joining, leaving and crashing move partitions without losing or duplicating a row', async (t) => {
  const env = await createSinkEnv(t, { dims: 8, partitions: PARTITIONS, sessionTimeoutMs: 6000 })
  const { config } = env
  const production = startProduction(await chunkProducer(t, config), config, { ids: 400, partitions: PARTITIONS })
  const a = spawnSink(t, env, ['--linger-ms', '50'])
  await a.waitForEvent((e) => e.event === 'batch-committed', 60_000)
  const b = spawnSink(t, env, ['--linger-ms', '50'])
  // Both own some partitions after the rebalance, and b has committed.
  const partial = (e: Record<string, unknown>): boolean =>
    e.event === 'assigned' && (e.partitions as number[]).length > 0 && (e.partitions as number[]).length < PARTITIONS
  await b.waitForEvent(partial, 60_000)
  await a.waitForEvent(partial, 60_000)
  await b.waitForEvent((e) => e.event === 'batch-committed', 60_000)
  await sleep(1000)
  a.child.kill('SIGKILL')
  await a.exitCode('a after SIGKILL', 10_000)
  const c = spawnSink(t, env, ['--linger-ms', '50'])
  await c.waitForEvent((e) => e.event === 'assigned' && (e.partitions as number[]).length > 0, 60_000)
  await sleep(1500)
  b.child.kill('SIGTERM')
  assert.equal(await b.exitCode('b after SIGTERM'), 0, b.stderr())
  await production.stop()
  await waitForCatchUp(env.admin, config, PARTITIONS)
  c.child.kill('SIGTERM')
  assert.equal(await c.exitCode('c after SIGTERM'), 0, c.stderr())
  const diff = await diffTable(env.admin, config, production.expected)
  assert.deepEqual(
    { missing: diff.missing, extra: diff.extra, stale: diff.stale },
    { missing: [], extra: [], stale: [] },
  )
  const shared = (events: Record<string, unknown>[]) => events.some(partial)
  assert.ok(shared(a.events) && shared(b.events), 'a and b shared the partitions')
  assert.ok(
    c.events.some((e) => e.event === 'assigned' && (e.partitions as number[]).length === PARTITIONS),
    'c took all partitions after b left',
  )
  const committed = [a, b, c].map((s) => s.events.filter((e) => e.event === 'batch-committed').length)
  assert.ok(
    committed.every((n) => n > 0),
    `every instance committed batches: ${committed}`,
  )
  t.diagnostic(
    `${production.counts.committed} committed events, ${diff.rows} rows; batches committed by a/b/c: ${committed.join('/')}`,
  )
})
