// The sink against the real stack: what one batch writes (rows, tombstones, audit, rejects), what it
// never writes (aborted transactions), and the group offsets it commits for lag.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PgvectorSink } from '../../src/sink/pgvector-sink.ts'
import { Admin } from '@platformatic/kafka'
import { endpoints } from '../support/stack.ts'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, storedOffsets, runSink, waitFor } from './support.ts'

test('sink: a producer that aborts, commits, aborts a transaction with no data and commits again: both committed transactions land', async (t) => {
  // One transactional id, so one producer id with two aborts: the pattern @platformatic/kafka's own
  // read_committed filter gets wrong (it dropped the first committed transaction; src/runtime/read-committed.ts).
  const env = await createSinkEnv(t, { dims: 8 })
  const producer = await chunkProducer(t, env.config)
  const { config } = env
  const chunk = async (id: string) => ({
    key: id,
    value: await producer.encodeChunk(chunkEvent(config, { id })),
    partition: 0,
  })
  await producer.send([await chunk('aborted#0')], { abort: true })
  await producer.send([await chunk('a#0'), await chunk('b#0')])
  await producer.send([], { abort: true })
  await producer.send([await chunk('c#0')])
  runSink(t, env)
  // 1 + 1 marker, 2 + 1 marker, 1 marker, 1 + 1 marker: offset 8 is the end.
  await waitFor(
    'the sink to reach the end of the topic',
    async () => ((await storedOffsets(env.admin, config)).get(0) ?? 0n) >= 8n,
  )
  assert.deepEqual([...(await readChunks(env.admin, config)).keys()].sort(), ['a#0', 'b#0', 'c#0'])
})

test('sink: upserts, tombstones, audit rows and rejects land in one transaction per batch; aborted transactions never', async (t) => {
  const env = await createSinkEnv(t, { dims: 8 })
  const producer = await chunkProducer(t, env.config)
  const { config } = env
  const hostile = `Robert'); DROP TABLE students;-- "quoted" \\ back\\slash 🦀 ünïcödé \n newline $1 %s`
  await producer.send([
    { key: 'a#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'a#0', version: 1 })) },
    {
      key: 'b#0',
      value: await producer.encodeChunk(
        chunkEvent(config, { id: 'b#0', version: 1, text: hostile, metadata: { note: hostile } }),
      ),
    },
    { key: 'c#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'c#0', version: 1 })) },
  ])
  await producer.send(
    [{ key: 'a#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'a#0', version: 9, text: 'aborted' })) }],
    { abort: true },
  )
  await producer.send([
    { key: 'c#0', value: null },
    { key: 'a#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'a#0', version: 2 })) },
    { key: 'bad#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'bad#0', embedding: [1, 2, 3] })) },
    { key: 'nul#0', value: await producer.encodeChunk(chunkEvent(config, { id: 'nul#0', text: 'a\u0000b' })) },
    { key: 'junk#0', value: Buffer.from('not avro') },
    {
      key: 'jsonnul#0',
      value: await producer.encodeChunk({ ...chunkEvent(config, { id: 'jsonnul#0' }), metadata: '{"a":"\\u0000"}' }),
    },
    {
      key: 'surrogate#0',
      value: await producer.encodeChunk({ ...chunkEvent(config, { id: 'surrogate#0' }), metadata: '{"a":"\\ud800"}' }),
    },
    {
      key: 'audit-1',
      value: await producer.encodeAudit({
        event_id: 'audit-1',
        kind: 'DELETION_APPLIED',
        topology: config.topology,
        topology_version: config.version,
        request_id: 'req-1',
        subject_hash: 'abc',
        entity_key_hash: null,
        reason: 'gdpr',
        counts: { chunks_removed: 1 },
        at_ms: Date.now(),
      }),
    },
  ])
  const { events } = runSink(t, env)
  const end = await waitFor('the sink to reach the end of the topic', async () => {
    const stored = (await storedOffsets(env.admin, config)).get(0)
    return stored !== undefined && stored >= 14n ? stored : undefined
  })
  assert.ok(end >= 14n, `stored offset ${end}`)
  const rows = await readChunks(env.admin, config)
  assert.deepEqual([...rows.keys()].sort(), ['a#0', 'b#0'])
  assert.equal(rows.get('a#0')!.content, 'text of a#0 v2')
  assert.equal(rows.get('b#0')!.content, hostile, 'hostile text is stored verbatim')
  const meta = await env.admin.query(
    `SELECT metadata->>'note' AS note, subjects, classification, tenant FROM ${config.names.chunkTable} WHERE chunk_id = 'b#0'`,
  )
  assert.equal(meta.rows[0].note, hostile)
  assert.deepEqual(meta.rows[0].subjects, ['customer:b#0'])
  const audit = await env.admin.query(`SELECT event_id, kind, request_id, counts FROM ${config.names.auditTable}`)
  // A DELETION_APPLIED makes the sink delete the subject's rows in every version (none match 'abc') and count them.
  const forgetCounts = { [`rows_deleted:${config.names.schema}.${config.names.chunkTableName}`]: 0, remaining: 0 }
  assert.deepEqual(audit.rows, [
    {
      event_id: 'audit-1',
      kind: 'DELETION_APPLIED',
      request_id: 'req-1',
      counts: { chunks_removed: 1, ...forgetCounts },
    },
  ])
  const rejects = await env.admin.query(
    `SELECT record_key, error_code FROM ${config.names.rejectsTable} ORDER BY "offset"`,
  )
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
    const committed = groups[0]?.topics
      .find((x) => x.name === config.topic)
      ?.partitions.find((p) => p.partitionIndex === 0)?.committedOffset
    return committed !== undefined && committed === (await storedOffsets(env.admin, config)).get(0)
  })
  const fresh = await env.admin.query(
    `SELECT chunks, max_lag > interval '0' AS lagged FROM ${config.names.freshnessView}`,
  )
  assert.equal(Number(fresh.rows[0].chunks), 2)
})

test('sink: refuses to run as a superuser or as the table owner', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  for (const [url, why] of [
    [endpoints.postgresUrl, /is a superuser/],
    [env.ownerUrl, /owns the table/],
  ] as const) {
    const sink = new PgvectorSink({
      config: env.config,
      postgresUrl: url,
      kafkaBrokers: endpoints.kafkaBrokers,
      schemaRegistryUrl: endpoints.schemaRegistryUrl,
    })
    await assert.rejects(sink.run(), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'RS_CONFIG_INVALID')
      assert.match(error.message, why)
      return true
    })
  }
})
