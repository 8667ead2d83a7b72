// Crash test: the sink in a child process is SIGKILLed at random points (including right as a
// batch's Postgres transaction starts) while transactional chunk events keep arriving; afterwards
// the table is exactly the last committed value per chunk id: 0 missing, 0 extra, 0 stale.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, spawnSink, storedOffsets, waitFor } from './support.ts'
import { Admin } from '@platformatic/kafka'
import { endpoints, uniqueName } from '../support/stack.ts'

const PARTITIONS = 2
const CHUNK_IDS = 300
const KILLS = 6

async function endOffsets(topic: string): Promise<Map<number, bigint>> {
  const admin = new Admin({ clientId: uniqueName('crash-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  try {
    const result = await admin.listOffsets({ topics: [{ name: topic, partitions: Array.from({ length: PARTITIONS }, (_, p) => ({ partitionIndex: p, timestamp: -1n })) }] })
    const out = new Map<number, bigint>()
    for (const topicResult of result) for (const p of topicResult.partitions) out.set(p.partitionIndex, p.offset)
    return out
  } finally {
    await admin.close()
  }
}

test(`crash: SIGKILL ${KILLS}× (half of them as a batch transaction starts) while events keep arriving — table == last committed value per chunk id`, async (t) => {
  const env = await createSinkEnv(t, { dims: 16, partitions: PARTITIONS, batchLingerMs: 50 })
  const { config } = env
  const producer = await chunkProducer(t, config)
  const expected = new Map<string, { hash: string } | null>()
  let version = 0
  let producing = true
  let produced = 0
  let aborted = 0
  const production = (async () => {
    while (producing) {
      const messages = []
      const ops = new Map<string, { hash: string } | null>()
      for (let i = 0; i < 40; i++) {
        const n = Math.floor(Math.random() * CHUNK_IDS)
        const id = `e${n}#0`
        version++
        const tombstone = Math.random() < 0.1
        messages.push({
          key: id,
          partition: n % PARTITIONS,
          value: tombstone ? null : await producer.encodeChunk(chunkEvent(config, { id, version })),
        })
        ops.set(id, tombstone ? null : { hash: `hash-${id}-${version}` })
      }
      const abort = Math.random() < 0.1
      await producer.send(messages, { abort })
      if (abort) aborted++
      else {
        for (const [id, op] of ops) expected.set(id, op)
        produced += messages.length
      }
      await sleep(20)
    }
  })()

  const instance = `crash-${env.suffix}`
  let killedInsideBatch = 0
  for (let round = 0; round < KILLS; round++) {
    const sink = spawnSink(t, env, ['--instance-id', instance, '--batch-size', '300'])
    await sink.waitForEvent((e) => e.event === 'assigned' && (e.partitions as number[]).length > 0, 90_000)
    if (round % 2 === 0) {
      // Mid-commit: kill the moment a batch transaction starts (after at least one committed batch this round).
      await sink.waitForEvent((e) => e.event === 'batch-committed', 60_000)
      await new Promise<void>((resolve) => sink.onEvent((e) => {
        if (e.event === 'batch-begin') {
          sink.child.kill('SIGKILL')
          resolve()
        }
      }))
    } else {
      await sleep(300 + Math.random() * 2500)
      sink.child.kill('SIGKILL')
    }
    await sink.exited
    if (sink.events.at(-1)?.event === 'batch-begin') killedInsideBatch++
  }
  producing = false
  await production
  assert.ok(produced > 0)
  assert.ok(killedInsideBatch >= KILLS / 2, `${killedInsideBatch} kills landed between batch-begin and batch-committed`)

  const final = spawnSink(t, env, ['--instance-id', instance, '--batch-size', '300'])
  const end = await endOffsets(config.topic)
  await waitFor('the final sink to reach the end of every partition', async () => {
    const stored = await storedOffsets(env.admin, config)
    return [...end].every(([p, o]) => stored.get(p) === o)
  }, 120_000)
  final.child.kill('SIGTERM')
  assert.equal(await final.exited, 0)

  const rows = await readChunks(env.admin, config)
  const missing: string[] = []
  const stale: string[] = []
  const extra: string[] = []
  for (const [id, op] of expected) {
    const row = rows.get(id)
    if (op === null) {
      if (row) extra.push(id)
    } else if (!row) missing.push(id)
    else if (row.content_hash !== op.hash) stale.push(`${id}: ${row.content_hash} != ${op.hash}`)
  }
  for (const id of rows.keys()) if (!expected.has(id)) extra.push(id)
  assert.deepEqual({ missing, extra, stale }, { missing: [], extra: [], stale: [] })
  t.diagnostic(`${produced} committed events (${aborted} aborted transactions), ${rows.size} rows, ${KILLS} kills (${killedInsideBatch} inside a batch transaction)`)
})
