// Postgres connection loss mid-run: the sink's backends are terminated (pg_terminate_backend) while
// it writes, including inside open transactions; it retries with backoff, skips nothing, and the
// table ends exact. (Real server restarts, fast and immediate, are in postgres-server-restart.test.ts,
// against a server of that test's own.)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { chunkProducer, createSinkEnv, diffTable, spawnSink, startProduction, waitForCatchUp } from './support.ts'

const PARTITIONS = 2
const TERMINATIONS = 6

test(`postgres: ${TERMINATIONS} terminated sink connections (inside transactions where possible) — retried, nothing skipped, table exact`, async (t) => {
  const env = await createSinkEnv(t, { dims: 16, partitions: PARTITIONS, batchLingerMs: 50 })
  const { config } = env
  const production = startProduction(await chunkProducer(t, config), config, { ids: 200, partitions: PARTITIONS })
  const sink = spawnSink(t, env, ['--batch-size', '300'])
  await sink.waitForEvent((e) => e.event === 'batch-committed', 90_000)
  let insideTransaction = 0
  for (let i = 0; i < TERMINATIONS; i++) {
    // Prefer a backend that is busy (inside the batch transaction); fall back to any sink backend.
    let terminated = 0
    for (let attempt = 0; attempt < 100 && terminated === 0; attempt++) {
      const busy = await env.admin.query<{ n: number }>(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
         WHERE usename = $1 AND (state = 'active' OR state LIKE 'idle in transaction%')`,
        [config.names.sinkRole],
      )
      terminated = busy.rows[0].n
      if (terminated > 0) insideTransaction++
      else await sleep(10)
    }
    if (terminated === 0) {
      await env.admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [
        config.names.sinkRole,
      ])
    }
    await sleep(300 + Math.random() * 700)
  }
  await production.stop()
  await waitForCatchUp(env.admin, config, PARTITIONS)
  sink.child.kill('SIGTERM')
  assert.equal(await sink.exitCode('the sink after SIGTERM'), 0, sink.stderr())

  const retries = sink.events.filter((e) => e.event === 'retry' && String(e.what).startsWith('postgres'))
  assert.ok(retries.length >= 1, 'the sink retried after losing its connection')
  const diff = await diffTable(env.admin, config, production.expected)
  assert.deepEqual(
    { missing: diff.missing, extra: diff.extra, stale: diff.stale },
    { missing: [], extra: [], stale: [] },
  )
  t.diagnostic(
    `${production.counts.committed} committed events, ${diff.rows} rows, ${TERMINATIONS} terminations (${insideTransaction} of a busy backend), ${retries.length} retries`,
  )
})
