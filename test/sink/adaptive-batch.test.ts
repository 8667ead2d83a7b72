// The sink's adaptive batch close (batchWait 'adaptive', the default): a batch closes as soon as the
// sink has read everything committed on its partitions, so a lone change is written at once however
// long --linger-ms is, and records that arrive together are written together.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { resolveSinkConfig } from '../../src/sink/config.ts'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, runSink, waitFor } from './support.ts'

test('sink config: batchWait is adaptive by default and refuses anything but adaptive or linger', () => {
  assert.equal(resolveSinkConfig({ topology: 't', dims: 4 }).batchWait, 'adaptive')
  assert.equal(resolveSinkConfig({ topology: 't', dims: 4, batchWait: 'linger' }).batchWait, 'linger')
  assert.throws(
    () => resolveSinkConfig({ topology: 't', dims: 4, batchWait: 'soon' as 'linger' }),
    /\/sink\/batchWait: must be 'adaptive' or 'linger'/,
  )
})

test('sink: with a linger of a minute, a lone change is still written at once, and a transaction of 30 in one batch', async (t) => {
  // A fixed linger would hold the first record for a minute: far past waitFor's 30 s.
  const env = await createSinkEnv(t, { dims: 8, batchLingerMs: 60_000 })
  const { config } = env
  const producer = await chunkProducer(t, config)
  const { events } = runSink(t, env)
  await waitFor('the assignment', async () => events.some((e) => e.event === 'assigned' && e.partitions.length > 0))

  await producer.send([{ key: 'lone#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'lone#0' })) }])
  await waitFor('the lone change in Postgres', async () => (await readChunks(env.admin, config)).has('lone#0'))

  const many = []
  for (let i = 0; i < 30; i++)
    many.push({ key: `m${i}#0`, value: await producer.encodeChunk(chunkEvent(config, { id: `m${i}#0` })) })
  await producer.send(many)
  await waitFor('the 30 in Postgres', async () => (await readChunks(env.admin, config)).size === 31)

  const begins = events.filter((e) => e.event === 'batch-begin')
  assert.deepEqual(
    begins.map((e) => e.records),
    [1, 30],
    'one batch for the lone change, one for the transaction of 30 (visible at once, read in one fetch)',
  )
})

test('sink config: batchMaxMs defaults to 1000 and refuses values outside 10 … 600000', () => {
  assert.equal(resolveSinkConfig({ topology: 't', dims: 4 }).batchMaxMs, 1000)
  assert.throws(() => resolveSinkConfig({ topology: 't', dims: 4, batchMaxMs: 5 }), /\/sink\/batchMaxMs/)
})

// The time cap (batchMaxMs): a backlog is written in batches of about what the sink writes in that
// long, so a partition moved to another sink never waits for a long transaction. The first batch
// takes at most 100 records (nothing timed yet), and no batch fewer than 100 while records wait.
test('sink: a backlog of 1200 records is written in batches of at most 100 with a 10 ms cap, in 2 with a 10 min cap', async (t) => {
  const backlog = async (batchMaxMs: number): Promise<number[]> => {
    const env = await createSinkEnv(t, { dims: 8, batchMaxMs })
    const { config } = env
    const producer = await chunkProducer(t, config)
    const records = []
    for (let i = 0; i < 1200; i++)
      records.push({ key: `b${i}#0`, value: await producer.encodeChunk(chunkEvent(config, { id: `b${i}#0` })) })
    await producer.send(records)
    const { events } = runSink(t, env)
    await waitFor('the backlog in Postgres', async () => (await readChunks(env.admin, config)).size === 1200, 90_000)
    return events.flatMap((e) => (e.event === 'batch-begin' ? [e.records] : []))
  }
  const capped = await backlog(10)
  assert.ok(
    capped.every((n) => n <= 100),
    `every batch at most 100 records with a 10 ms cap: ${capped.join(',')}`,
  )
  assert.equal(
    capped.reduce((a, b) => a + b, 0),
    1200,
  )
  const uncapped = await backlog(600_000)
  assert.deepEqual(uncapped, [100, 1100], 'the first batch of 100 is timed, the rest fits in one (batch size 2000)')
})
