// A topology with no govern (notes → chunk → embed → toChunks) on the real stack: the Kafka runtime
// with Redis stores and the services' Avro codecs, and the pgvector sink. A TRUNCATE read on one
// partition empties the index, and its audit events go where the topology's index is — the chunk
// topic, by default — so the sink writes one TRUNCATED row per processor partition whose counts add
// up to the notes the table held.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Producer } from '@platformatic/kafka'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { cdcTableDecoder } from '../../src/cdc/table-decoder.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { KafkaRuntime } from '../../src/runtime/kafka-runtime.ts'
import { partitionForKey } from '../../src/topology/partitioner.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { createSinkEnv, readChunks, runSink, waitFor } from '../sink/support.ts'
import { redisStoresFor } from '../support/local.ts'
import { testRagServices } from '../support/rag-services.ts'
import { deleteAfter, runStopped } from '../support/runtime-waits.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const PARTITIONS = 2
const NOTES = 8

function envelope(op: 'c' | 't', lsn: number, row: Record<string, unknown> | null): Buffer {
  return Buffer.from(
    JSON.stringify({
      before: null,
      after: row,
      source: { ts_ms: 1_765_000_000_000 + lsn, lsn, schema: 'public', table: 'notes', snapshot: 'false' },
      op,
      ts_ms: 1_765_000_000_000 + lsn,
    }),
  )
}

test('no govern, real stack: a TRUNCATE empties the index and the sink writes its TRUNCATED rows with the count', async (t) => {
  const env = await createSinkEnv(t, { dims: 384, partitions: PARTITIONS })
  const chunkTopic = env.config.topic
  const app = uniqueName('notes-audit')
  const notesTopic = `${app}.public.notes`
  await createTopics(t, [notesTopic], PARTITIONS)
  const services = await testRagServices(t, chunkTopic)
  t.after(() => deleteSubject(`${chunkTopic}-audit-value`))

  const b = new TopologyBuilder({ applicationId: app, services })
  b.cdcTable<{ id: number; body: string }>(notesTopic, {
    name: 'notes',
    ...cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' })),
  })
    .chunk({ entityType: 'note', text: (n) => n.body, strategy: { kind: 'recursive', size: 200 } })
    .embed()
    .toChunks(chunkTopic)
  const topology = b.build().compile({ partitions: PARTITIONS })
  await deleteAfter(
    t,
    topology.topics.filter((x) => x.role !== 'source' && x.role !== 'sink').map((x) => x.name),
  )
  const runtime = new KafkaRuntime(topology, {
    brokers: endpoints.kafkaBrokers,
    stores: redisStoresFor(t, app, topology.storeNames),
    instanceId: 'notes',
    sessionTimeoutMs: 6_000,
    fetchMaxWaitMs: 50,
  })
  void runStopped(t, runtime, 'the notes runtime')
  runSink(t, env)
  const producer = new Producer({ clientId: uniqueName('notes-in'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => producer.close().catch(() => {}))

  const keyOf = (id: number) => Buffer.from(JSON.stringify({ id }))
  await producer.send({
    messages: Array.from({ length: NOTES }, (_, i) => ({
      topic: notesTopic,
      key: keyOf(i + 1),
      value: envelope('c', 100 + i, { id: i + 1, body: `Note ${i + 1}: the printer on floor ${i} jams on A3 paper.` }),
      partition: partitionForKey(keyOf(i + 1), PARTITIONS),
    })),
  })
  const indexed = await waitFor(
    'every note indexed',
    async () => {
      const chunks = await readChunks(env.admin, env.config)
      return chunks.size >= NOTES ? chunks.size : undefined
    },
    90_000,
  )

  await producer.send({
    messages: [{ topic: notesTopic, key: undefined, value: envelope('t', 500, null), partition: 1 }],
  })
  const audits = await waitFor(
    'the TRUNCATED rows of both partitions',
    async () => {
      const { rows } = await env.admin.query<{ topology: string; reason: string; counts: Record<string, number> }>(
        `SELECT topology, reason, counts FROM ${env.config.names.auditTable} WHERE kind = 'TRUNCATED'`,
      )
      return rows.length >= PARTITIONS ? rows : undefined
    },
    90_000,
  )
  assert.deepEqual(audits.map((a) => a.counts.partition).sort(), [0, 1])
  for (const a of audits) {
    assert.equal(a.topology, app)
    assert.equal(a.reason, 'notes (public.notes)')
    assert.equal(a.counts.source_position, 500)
  }
  assert.equal(
    audits.reduce((n, a) => n + a.counts.rows_removed, 0),
    NOTES,
    'the rows removed add up to the notes the table held',
  )
  await waitFor('the index emptied', async () => (await readChunks(env.admin, env.config)).size === 0, 90_000)
  assert.ok(indexed >= NOTES)
})
