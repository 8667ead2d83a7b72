// Stopping the sink: SIGTERM makes it abandon whatever it waits for (a Postgres statement blocked
// on a lock, a group rebalance, a fetch), leave the group and exit 0 within seconds; the abandoned
// batch commits whole (rows and offsets) or not at all, and the next sink resumes from the offsets
// stored with the rows. A batch is one statement, its own transaction: once sent, the server may
// still run it to its COMMIT after the sink is gone (when the lock is released before the statement's
// lock_timeout), behind the same fence as any batch. (The
// shutdown deadline itself is proven on `ragstream run`, whose graceful stop can really hang:
// test/runtime/run-command.test.ts.)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  ADMIN_URL,
  chunkEvent,
  chunkProducer,
  connect,
  createSinkEnv,
  diffTable,
  endOffsets,
  spawnSink,
  storedOffsets,
  waitFor,
  waitForCatchUp,
} from './support.ts'

test(
  'shutdown: SIGTERM while the sink is blocked in Postgres (a row lock another session holds) stops it within seconds, exit 0; the batch commits whole or not at all; the next sink ends the table exact',
  { timeout: 180_000 },
  async (t) => {
    const env = await createSinkEnv(t, { dims: 8, partitions: 1 })
    const { config } = env
    const producer = await chunkProducer(t, config)
    const expected = new Map<string, string | null>()
    let version = 0
    const send = async (ids: number): Promise<void> => {
      const messages = []
      for (let i = 0; i < ids; i++) {
        const id = `s${i}#0`
        version++
        messages.push({ key: id, partition: 0, value: await producer.encodeChunk(chunkEvent(config, { id, version })) })
        expected.set(id, `hash-${id}-${version}`)
      }
      await producer.send(messages)
    }

    await send(20)
    const first = spawnSink(t, env, ['--shutdown-timeout-ms', '20000'])
    await first.waitForEvent((e) => e.event === 'batch-committed', 60_000)
    await waitForCatchUp(env.admin, config, 1, 60_000)
    const committedBefore = (await storedOffsets(env.admin, config)).get(0)

    // Another session locks the offsets row: the sink's next batch blocks on its compare-and-set.
    // (Released in finally, not t.after: the role cleanup registered earlier would wait on this lock.)
    const locker = await connect(t, ADMIN_URL)
    await locker.query('BEGIN')
    let tookMs: number
    try {
      await locker.query(`SELECT * FROM ${config.names.offsetsTable} WHERE topic = $1 FOR UPDATE`, [config.topic])
      await send(20)
      await waitFor(
        'the sink backend to wait on the offsets row lock',
        async () => {
          const r = await env.admin.query(
            `SELECT 1 FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'`,
            [config.names.sinkRole],
          )
          return r.rowCount! > 0
        },
        60_000,
      )
      const signalled = Date.now()
      first.child.kill('SIGTERM')
      assert.equal(await first.exitCode('the sink blocked in Postgres, after SIGTERM', 30_000), 0, first.stderr())
      tookMs = Date.now() - signalled
    } finally {
      await locker.query('ROLLBACK').catch(() => {})
    }
    assert.ok(tookMs < 10_000, `exited ${tookMs} ms after SIGTERM`)
    assert.equal(first.events.at(-1)?.event, 'stopped')
    assert.ok(!first.events.some((e) => e.event === 'shutdown-timeout'))
    // The abandoned statement ends (its lock_timeout, or the lock released): then the stored offset is
    // the one before the batch or the topic's end, and the next sink's table must match it.
    await waitFor('the abandoned statement to end', async () => {
      const r = await env.admin.query(`SELECT 1 FROM pg_stat_activity WHERE usename = $1 AND state = 'active'`, [
        config.names.sinkRole,
      ])
      return r.rowCount === 0
    })
    const end = (await endOffsets(config.topic, 1)).get(0)
    const committedAfter = (await storedOffsets(env.admin, config)).get(0)
    assert.ok(
      committedAfter === committedBefore || committedAfter === end,
      `stored offset ${committedAfter}: neither the one before the batch (${committedBefore}) nor its end (${end})`,
    )
    t.diagnostic(`the abandoned batch ${committedAfter === end ? 'committed' : 'did not commit'}`)

    const second = spawnSink(t, env)
    // Started (its SIGTERM handler installed) before the catch-up, which may be immediate.
    await second.waitForEvent((e) => e.event === 'assigned', 60_000)
    await waitForCatchUp(env.admin, config, 1, 60_000)
    second.child.kill('SIGTERM')
    assert.equal(await second.exitCode('the second sink after SIGTERM', 30_000), 0, second.stderr())
    const diff = await diffTable(env.admin, config, expected)
    assert.deepEqual(
      { missing: diff.missing, extra: diff.extra, stale: diff.stale },
      { missing: [], extra: [], stale: [] },
    )
    t.diagnostic(`the sink blocked in Postgres exited ${tookMs} ms after SIGTERM`)
  },
)

test(
  'shutdown: SIGTERM while the sink waits in a group rebalance or a fetch stops it within seconds, exit 0',
  { timeout: 120_000 },
  async (t) => {
    const env = await createSinkEnv(t, { dims: 8, partitions: 2, sessionTimeoutMs: 6000 })
    const producer = await chunkProducer(t, env.config)
    await producer.send([
      { key: 'a#0', partition: 0, value: await producer.encodeChunk(chunkEvent(env.config, { id: 'a#0' })) },
    ])
    const a = spawnSink(t, env)
    await a.waitForEvent((e) => e.event === 'batch-committed', 60_000)
    // b joins: the group rebalances (a's JoinGroup is held by the coordinator until b is in too); stop b
    // right as it starts, and a while it is idle in a fetch.
    const b = spawnSink(t, env)
    await b.waitForEvent((e) => e.event === 'started', 60_000)
    for (const [name, sink] of [
      ['b', b],
      ['a', a],
    ] as const) {
      const signalled = Date.now()
      sink.child.kill('SIGTERM')
      assert.equal(await sink.exitCode(`${name} after SIGTERM`, 30_000), 0, sink.stderr())
      assert.ok(Date.now() - signalled < 15_000, `${name} stopped ${Date.now() - signalled} ms after SIGTERM`)
      assert.equal(sink.events.at(-1)?.event, 'stopped')
    }
  },
)
