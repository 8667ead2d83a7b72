// The sink against the real stack: what one batch writes, what it refuses, and the source-position guard.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PgvectorSink, type SinkLogEvent } from '../../src/sink/pgvector-sink.ts'
import { BatchWriter, buildBatch, claimPartitions } from '../../src/sink/batch-writer.ts'
import { Admin } from '@platformatic/kafka'
import { endpoints } from '../support/stack.ts'
import { chunkEvent, chunkProducer, connect, createSinkEnv, readChunks, storedOffsets, waitFor, type SinkEnv } from './support.ts'
import type { ChunkRow } from '../../src/sink/chunk-codec.ts'

function startSink(env: SinkEnv, events: SinkLogEvent[] = []): { sink: PgvectorSink; done: Promise<void>; events: SinkLogEvent[] } {
  const sink = new PgvectorSink({
    config: env.config,
    postgresUrl: env.sinkUrl,
    kafkaBrokers: endpoints.kafkaBrokers,
    schemaRegistryUrl: endpoints.schemaRegistryUrl,
    log: (e) => events.push(e),
  })
  const done = sink.run()
  done.catch(() => {})
  return { sink, done, events }
}

test('sink: upserts, tombstones, audit rows and rejects land in one transaction per batch; aborted transactions never', async (t) => {
  const env = await createSinkEnv(t, { dims: 8 })
  const producer = await chunkProducer(t, env.config)
  const { config } = env
  const hostile = `Robert'); DROP TABLE students;-- "quoted" \\ back\\slash 🦀 ünïcödé \n newline $1 %s`
  await producer.send([
    { key: 'a#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'a#0', version: 1 })) },
    { key: 'b#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'b#0', version: 1, text: hostile, metadata: { note: hostile } })) },
    { key: 'c#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'c#0', version: 1 })) },
  ])
  await producer.send([{ key: 'a#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'a#0', version: 9, text: 'aborted' })) }], { abort: true })
  await producer.send([
    { key: 'c#0', value: null },
    { key: 'a#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'a#0', version: 2 })) },
    { key: 'bad#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'bad#0', embedding: [1, 2, 3] })) },
    { key: 'nul#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'nul#0', text: 'a\u0000b' })) },
    { key: 'junk#0', value: Buffer.from('not avro') },
    { key: 'jsonnul#0', value: await producer.encodeChunk({ ...chunkEvent(config, { id: 'jsonnul#0' }), metadata: '{"a":"\\u0000"}' }) },
    { key: 'surrogate#0', value: await producer.encodeChunk({ ...chunkEvent(config, { id: 'surrogate#0' }), metadata: '{"a":"\\ud800"}' }) },
    {
      key: 'audit-1',
      value: await producer.encodeAudit({
        event_id: 'audit-1', kind: 'DELETION_APPLIED', topology: config.topology, topology_version: config.version, request_id: 'req-1',
        subject_hash: 'abc', entity_key_hash: null, reason: 'gdpr', counts: { chunks_removed: 1 }, at_ms: Date.now(),
      }),
    },
  ])
  const { sink, done, events } = startSink(env)
  t.after(async () => {
    sink.stop()
    await done.catch(() => {})
  })
  const end = await waitFor('the sink to reach the end of the topic', async () => {
    const stored = (await storedOffsets(env.admin, config)).get(0)
    return stored !== undefined && stored >= 14n ? stored : undefined
  })
  assert.ok(end >= 14n, `stored offset ${end}`)
  const rows = await readChunks(env.admin, config)
  assert.deepEqual([...rows.keys()].sort(), ['a#0', 'b#0'])
  assert.equal(rows.get('a#0')!.content, 'text of a#0 v2')
  assert.equal(rows.get('b#0')!.content, hostile, 'hostile text is stored verbatim')
  const meta = await env.admin.query(`SELECT metadata->>'note' AS note, subjects, classification, tenant FROM ${config.names.chunkTable} WHERE chunk_id = 'b#0'`)
  assert.equal(meta.rows[0].note, hostile)
  assert.deepEqual(meta.rows[0].subjects, ['customer:b#0'])
  const audit = await env.admin.query(`SELECT event_id, kind, request_id, counts FROM ${config.names.auditTable}`)
  assert.deepEqual(audit.rows, [{ event_id: 'audit-1', kind: 'DELETION_APPLIED', request_id: 'req-1', counts: { chunks_removed: 1 } }])
  const rejects = await env.admin.query(`SELECT record_key, error_code FROM ${config.names.rejectsTable} ORDER BY "offset"`)
  assert.deepEqual(rejects.rows, [
    { record_key: 'bad#0', error_code: 'RS_EMBEDDING_DIMENSIONS' },
    { record_key: 'nul#0', error_code: 'RS_RECORD_INVALID' },
    { record_key: 'junk#0', error_code: 'RS_DECODE_FAILED' },
    { record_key: 'jsonnul#0', error_code: 'RS_RECORD_INVALID' },
    { record_key: 'surrogate#0', error_code: 'RS_RECORD_INVALID' },
  ])
  assert.ok(events.some((e) => e.event === 'batch-committed'))
  // Kafka group offsets follow Postgres, for lag tools only (the sink never reads them back).
  const admin = new Admin({ clientId: `test-${config.topology}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => admin.close())
  await waitFor('the group offset to follow the stored offset', async () => {
    const groups = await admin.listConsumerGroupOffsets({ groups: [config.groupId] })
    const committed = groups[0]?.topics.find((x) => x.name === config.topic)?.partitions.find((p) => p.partitionIndex === 0)?.committedOffset
    return committed !== undefined && committed === (await storedOffsets(env.admin, config)).get(0)
  })
  const fresh = await env.admin.query(`SELECT chunks, max_lag > interval '0' AS lagged FROM ${config.names.freshnessView}`)
  assert.equal(Number(fresh.rows[0].chunks), 2)
})

function row(env: SinkEnv, id: string, offset: bigint, content: string): ChunkRow {
  return {
    chunkId: id, entityType: 'ticket', entityKey: id, chunkIndex: 0, content, contentHash: content, embedding: `[${Array(env.config.dims).fill(0.5).join(',')}]`,
    metadata: '{}', classification: null, tenant: null, region: null, subjects: '[]', policyVersion: null, sourceTopic: 'cdc', sourcePartition: 0,
    sourceOffset: String(offset), sourcePosition: null, sourceTimestampMs: Date.now(), topology: env.config.topology, topologyVersion: 'v1',
    chunker: 'fixed', embeddingModel: 'm', emittedAtMs: Date.now(), chunkTopic: env.config.topic, chunkPartition: 0, chunkOffset: offset,
  }
}

test('sink: out-of-order delivery of two versions of a chunk leaves the newer; a replayed upsert never resurrects a tombstoned chunk', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const sinkClient = await connect(t, env.sinkUrl)
  const writer = new BatchWriter(env.config.names, 'test')
  const token = crypto.randomUUID()
  await claimPartitions(sinkClient, env.config.names, env.config.topic, [{ partition: 0, initial: 0n, ownerToken: token }])
  let expected = 0n
  const write = async (events: Parameters<typeof buildBatch>[2]) => {
    const next = expected + 1n
    const outcome = await writer.write(sinkClient, buildBatch(env.config.topic, [{ partition: 0, expected, next, ownerToken: token }], events))
    assert.equal(outcome.status, 'committed')
    expected = next
  }
  // The newer version (offset 20) arrives first, the older (offset 10) second: the newer stays.
  await write([{ kind: 'upsert', row: row(env, 'x', 20n, 'new') }])
  await write([{ kind: 'upsert', row: row(env, 'x', 10n, 'old') }])
  assert.equal((await readChunks(env.admin, env.config)).get('x')!.content, 'new')
  // Both in one batch, older last: still the newer.
  await write([{ kind: 'upsert', row: row(env, 'y', 31n, 'new') }, { kind: 'upsert', row: row(env, 'y', 30n, 'old') }])
  assert.equal((await readChunks(env.admin, env.config)).get('y')!.content, 'new')
  // A tombstone at 40, then a replay of the upsert at 20: stays deleted. A newer upsert (50) re-creates it.
  await write([{ kind: 'tombstone', chunkId: 'x', offset: 40n }])
  await write([{ kind: 'upsert', row: row(env, 'x', 20n, 'new') }])
  assert.equal((await readChunks(env.admin, env.config)).has('x'), false)
  await write([{ kind: 'upsert', row: row(env, 'x', 50n, 'newest') }])
  assert.equal((await readChunks(env.admin, env.config)).get('x')!.content, 'newest')
  // An older tombstone does not delete a newer row.
  await write([{ kind: 'tombstone', chunkId: 'x', offset: 45n }])
  assert.equal((await readChunks(env.admin, env.config)).get('x')!.content, 'newest')
})

test('sink: the offsets fence refuses a batch from a stale owner, and recognises its own landed commit', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const a = await connect(t, env.sinkUrl)
  const writer = new BatchWriter(env.config.names, 'test')
  const { topic } = env.config
  const first = crypto.randomUUID()
  await claimPartitions(a, env.config.names, topic, [{ partition: 0, initial: 0n, ownerToken: first }])
  const batch = (token: string, expected: bigint, next: bigint, id: string) =>
    buildBatch(topic, [{ partition: 0, expected, next, ownerToken: token }], [{ kind: 'upsert', row: row(env, id, next - 1n, id) }])
  assert.equal((await writer.write(a, batch(first, 0n, 5n, 'one'))).status, 'committed')
  // The same batch again (its COMMIT reply was lost): recognised as already committed, nothing written twice.
  const again = await writer.write(a, batch(first, 0n, 5n, 'one'))
  assert.deepEqual(again, { status: 'committed', upserted: 0, deleted: 0, alreadyCommitted: true })
  // Another instance claims the partition; the first one's next batch is fenced even though the offset still matches.
  const second = crypto.randomUUID()
  const stored = await claimPartitions(a, env.config.names, topic, [{ partition: 0, initial: 0n, ownerToken: second }])
  assert.equal(stored.get(0), 5n)
  assert.deepEqual(await writer.write(a, batch(first, 5n, 9n, 'zombie')), { status: 'fenced', partitions: [0] })
  // Offsets with gaps are fine: expected is what was stored, not the first offset of the batch.
  assert.equal((await writer.write(a, batch(second, 5n, 9n, 'fresh'))).status, 'committed')
  const rows = await readChunks(env.admin, env.config)
  assert.deepEqual([...rows.keys()].sort(), ['fresh', 'one'])
})
