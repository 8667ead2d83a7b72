// Zombie sink: an instance holding an uncommitted batch is paused (SIGSTOP) past its session
// timeout; another instance takes the partition over and commits; the resumed zombie commits no row.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, spawnSink, storedOffsets, waitFor } from './support.ts'

test('zombie: a sink paused past its session timeout while another takes over commits no row when resumed', async (t) => {
  const env = await createSinkEnv(t, { dims: 8, sessionTimeoutMs: 6000 })
  const { config } = env
  const producer = await chunkProducer(t, config)
  const send = async (from: number, to: number, version: number) => {
    const messages = []
    for (let i = from; i < to; i++)
      messages.push({
        key: `z${i}#0`,
        value: await producer.encodeChunk(chunkEvent(config, { id: `z${i}#0`, version })),
      })
    await producer.send(messages)
  }

  // The zombie-to-be lingers 5 s per batch (a fixed wait, not the adaptive close), so it is holding
  // fetched, uncommitted records when paused.
  const zombie = spawnSink(t, env, ['--linger-ms', '5000', '--batch-wait', 'linger'])
  const started = await zombie.waitForEvent((e) => e.event === 'started')
  await zombie.waitForEvent((e) => e.event === 'assigned' && (e.partitions as number[]).includes(0))
  await send(0, 20, 1)
  await sleep(1500)
  assert.equal(
    zombie.events.some((e) => e.event === 'batch-committed'),
    false,
    'the zombie holds its batch',
  )
  zombie.child.kill('SIGSTOP')
  t.after(() => {
    zombie.child.kill('SIGCONT')
  })

  const successor = spawnSink(t, env, ['--linger-ms', '100'])
  await successor.waitForEvent((e) => e.event === 'assigned' && (e.partitions as number[]).includes(0), 60_000)
  await send(0, 10, 2)
  await waitFor('the successor to commit everything', async () => {
    const rows = await readChunks(env.admin, config)
    return rows.size === 20 && rows.get('z0#0')!.content_hash === 'hash-z0#0-2'
  })
  const offsetBefore = (await storedOffsets(env.admin, config)).get(0)

  zombie.child.kill('SIGCONT')
  // Resumed, the zombie either tries its stale batch and is fenced (RS_SINK_FENCED), or learns of
  // the new generation first and drops the batch. Either way it commits nothing.
  const outcome = await zombie.waitForEvent(
    (e) => e.event === 'fenced' || (e.event === 'assigned' && zombie.events.indexOf(e) > 1),
    60_000,
  )
  if (outcome.event === 'fenced') {
    // After the fence it rejoins the group and claims whatever the new generation gives it.
    const fencedAt = zombie.events.indexOf(outcome)
    await zombie.waitForEvent((e) => e.event === 'assigned' && zombie.events.indexOf(e) > fencedAt, 60_000)
  }
  zombie.child.kill('SIGKILL')
  await zombie.exitCode('the zombie after SIGKILL', 10_000)
  t.diagnostic(`resumed zombie: ${JSON.stringify(outcome)}`)
  if (outcome.event === 'fenced') assert.equal(outcome.code, 'RS_SINK_FENCED')
  assert.equal(
    zombie.events.some((e) => e.event === 'batch-committed'),
    false,
    'the zombie committed no batch',
  )
  const byZombie = await env.admin.query(
    `SELECT count(*)::int AS n FROM ${config.names.chunkTable} WHERE written_by = $1`,
    [started.instance],
  )
  assert.equal(byZombie.rows[0].n, 0)
  const rows = await readChunks(env.admin, config)
  for (let i = 0; i < 20; i++) assert.equal(rows.get(`z${i}#0`)!.content_hash, `hash-z${i}#0-${i < 10 ? 2 : 1}`)
  assert.equal((await storedOffsets(env.admin, config)).get(0), offsetBefore)
})
