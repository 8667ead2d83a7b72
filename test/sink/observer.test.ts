// The sink's log callback is the caller's code: a throwing one must not stall the sink or make it
// treat a committed batch as failed. Every event's callback throws here; the rows arrive all the same.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PgvectorSink } from '../../src/sink/pgvector-sink.ts'
import { endpoints } from '../support/stack.ts'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, waitFor } from './support.ts'

test('sink: a log callback that throws on every event changes nothing: the rows are written, once', async (t) => {
  const env = await createSinkEnv(t, { dims: 8 })
  const { config } = env
  const producer = await chunkProducer(t, config)
  const seen: string[] = []
  const sink = new PgvectorSink({
    config,
    postgresUrl: env.sinkUrl,
    kafkaBrokers: endpoints.kafkaBrokers,
    schemaRegistryUrl: endpoints.schemaRegistryUrl,
    log: (e) => {
      seen.push(e.event)
      throw new Error(`observer bug on ${e.event}`)
    },
  })
  const done = sink.run()
  done.catch(() => {})
  t.after(async () => {
    sink.stop()
    await done.catch(() => {})
  })
  const records = []
  for (let i = 0; i < 20; i++)
    records.push({ key: `c${i}#0`, value: await producer.encodeChunk(chunkEvent(config, { id: `c${i}#0` })) })
  await producer.send(records)
  await waitFor('the 20 rows in Postgres', async () => (await readChunks(env.admin, config)).size === 20)
  sink.stop()
  await done
  assert.ok(seen.includes('batch-committed'), `the callback saw the commits: ${[...new Set(seen)].join(', ')}`)
  assert.equal(seen.filter((e) => e === 'batch-committed').length, 1, 'one batch, committed once (no retry)')
})
