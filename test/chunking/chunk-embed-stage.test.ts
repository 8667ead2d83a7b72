// The CDC decoder, the chunk stage and the chunk-event codec wired into a topology, run on the
// public test driver: Debezium changes in, chunk events (upserts first, then tombstones) out.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { cdcTableDecoder } from '../../src/cdc/table-decoder.ts'
import { createChunker } from '../../src/chunking/chunker.ts'
import { chunkEmbedStage, chunkEventEncoder } from '../../src/chunking/chunk-embed-stage.ts'
import { chunkId } from '../../src/chunking/chunk-id.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import { chunkEventJsonCodec } from '../../src/serde/chunk-event-codec.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'

const TOPIC = 'dbserver1.inventory.customers'
const OUT = 'rag.chunks.support'
const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/debezium/customers.schemaless.json', import.meta.url), 'utf8'),
) as { records: { value: { after: Record<string, unknown>; source: Record<string, unknown> } }[] }

const paragraph = (i: number, edit = '') =>
  `Note ${i}. ` +
  `The customer asked about invoice exports for plan ${i}; exports run nightly. ${edit}`.repeat(3).trim()
const notes = (edits: Record<number, string> = {}, count = 10) =>
  Array.from({ length: count }, (_, i) => paragraph(i, edits[i])).join('\n\n')

let lsn = 34_000_000
function change(op: 'c' | 'u' | 'd', id: number, text: string) {
  const row = { ...fixture.records[1].value.after, id, notes: text }
  lsn += 100
  return {
    op,
    before: op === 'd' ? row : null,
    after: op === 'd' ? null : row,
    source: { ...fixture.records[1].value.source, lsn, ts_ms: 1764150000000 + lsn },
    ts_ms: 1764150000000 + lsn,
  }
}

function setup() {
  const embedder = new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 32 }))
  const customers = cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }))
  const b = new TopologyBuilder({ applicationId: 'support' })
  b.cdcTable<Record<string, unknown>>(TOPIC, { name: 'customers', decode: customers.decode })
    .stage({
      name: 'chunk',
      kind: 'chunk+embed',
      stores: ['chunk-sets'],
      processor: chunkEmbedStage<Record<string, unknown>>({
        topology: 'support',
        version: 'v1',
        entityType: 'customer',
        store: 'chunk-sets',
        chunker: createChunker({
          strategy: { kind: 'recursive', size: 300, overlap: 0 },
          template: '{first_name} {last_name}: {text}',
        }),
        embedder,
        text: (c) => String(c.notes ?? ''),
        metadata: (c) => ({ email: c.email }),
        governance: (c) => ({ tenant: 'acme', subjects: [`customer:${String(c.id)}`] }),
      }),
    })
    .to(OUT, { encode: chunkEventEncoder(chunkEventJsonCodec) })
  const driver = new TopologyTestDriver(b.build(), { partitions: 2, sinkPartitions: { [OUT]: 3 } })
  const read = () =>
    driver.readOutput(OUT).map((r) => ({
      key: r.key as string,
      partition: r.partition,
      event: chunkEventJsonCodec.decode(r.rawValue) as ChunkEvent | null,
    }))
  const pipe = (id: number, value: unknown) => driver.pipe(TOPIC, JSON.stringify({ id }), value)
  return { driver, embedder, read, pipe }
}

test('a Debezium change becomes chunk events with stable ids, embeddings, governance fields and lineage, partitioned by entity', async () => {
  const { read, pipe } = setup()
  await pipe(1005, change('c', 1005, notes()))
  const out = read()
  assert.equal(out.length, 10)
  out.forEach(({ key, partition, event }, i) => {
    assert.equal(key, chunkId('support', 'customer', '1005', i))
    assert.equal(partition, partitionForString('1005', 3))
    assert.ok(event)
    assert.equal(event.chunk_index, i)
    assert.match(event.text, /^Jonas Berg: Note \d+\./)
    assert.equal(event.embedding.length, 32)
    assert.equal(event.tenant, 'acme')
    assert.deepEqual(event.subjects, ['customer:1005'])
    assert.equal(event.metadata, '{"email":"jonas@berg.example"}')
    assert.equal(event.lineage.source_topic, TOPIC)
    assert.equal(event.lineage.source_position, String(lsn))
    assert.equal(event.lineage.source_table, 'inventory.customers')
    assert.equal(event.lineage.embedding_model, 'hashing:v1@32')
    assert.equal(event.lineage.topology_version, 'v1')
  })
})

test('edit one paragraph → one upsert; identical resend → nothing; shrink → upserts then tombstones; delete → all tombstones; its tombstone → nothing', async () => {
  const { read, pipe, embedder } = setup()
  await pipe(7, change('c', 7, notes()))
  const ids = read().map((r) => r.key)
  const embeddedAfterCreate = embedder.metrics().items

  await pipe(7, change('u', 7, notes({ 3: 'Refunds too.' })))
  const edited = read()
  assert.deepEqual(
    edited.map((r) => [r.key, r.event?.chunk_index]),
    [[ids[3], 3]],
  )
  assert.equal(embedder.metrics().items, embeddedAfterCreate + 1, 'only the changed chunk was embedded')

  await pipe(7, change('u', 7, notes({ 3: 'Refunds too.' })))
  assert.deepEqual(read(), [])

  await pipe(7, change('u', 7, notes({ 3: 'Refunds too.', 5: 'Closed.' }, 6)))
  assert.deepEqual(
    read().map((r) => [r.key, r.event === null ? 'tombstone' : 'upsert']),
    [
      [ids[5], 'upsert'],
      [ids[6], 'tombstone'],
      [ids[7], 'tombstone'],
      [ids[8], 'tombstone'],
      [ids[9], 'tombstone'],
    ],
  )

  await pipe(7, change('d', 7, ''))
  assert.deepEqual(
    read().map((r) => [r.key, r.event]),
    ids.slice(0, 6).map((id) => [id, null]),
  )
  await pipe(7, null) // the tombstone Debezium writes after the delete
  assert.deepEqual(read(), [])
})

test('a primary-key change moves the chunks: tombstones under the old key, upserts under the new one', async () => {
  const { read, pipe } = setup()
  await pipe(1001, change('c', 1001, notes({}, 2)))
  read()
  await pipe(1001, change('d', 1001, ''))
  await pipe(1001, null)
  await pipe(2001, change('c', 2001, notes({}, 2)))
  assert.deepEqual(
    read().map((r) => [r.key, r.event === null]),
    [
      [chunkId('support', 'customer', '1001', 0), true],
      [chunkId('support', 'customer', '1001', 1), true],
      [chunkId('support', 'customer', '2001', 0), false],
      [chunkId('support', 'customer', '2001', 1), false],
    ],
  )
})

test('a malformed record is dead-lettered with its position and the next good record still flows', async () => {
  const { driver, read } = setup()
  await driver.pipeBatch([
    { topic: TOPIC, key: '{"id":1}', value: Buffer.from('{"op":"c","after":') },
    { topic: TOPIC, key: '{"id":2}', value: change('c', 2, 'Short note.') },
  ])
  const [dead, ...more] = driver.readDeadLetters()
  assert.equal(more.length, 0)
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.code], 'RS_DECODE_FAILED')
  assert.match(dead.headers[DEAD_LETTER_HEADERS.message], /value is not valid JSON/)
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.topic], TOPIC)
  assert.deepEqual(
    read().map((r) => r.event?.text),
    ['Jonas Berg: Short note.'],
  )
})

test("bring your own vectors: the row's vector is the chunk's embedding; a bad vector dead-letters only that row", async () => {
  const b = new TopologyBuilder({ applicationId: 'faq' })
  b.table<{ q: string; vec: number[] }>('faq.answers', { name: 'answers' })
    .stage({
      name: 'chunk',
      kind: 'chunk+embed',
      stores: ['faq-chunk-sets'],
      processor: chunkEmbedStage<{ q: string; vec: number[] }>({
        topology: 'faq',
        version: 'v1',
        entityType: 'answer',
        store: 'faq-chunk-sets',
        chunker: createChunker({ strategy: { kind: 'whole' } }),
        embedder: { precomputed: { kind: 'precomputed', field: 'vec', dimensions: 3, model: 'upstream-e5' } },
        text: (a) => a.q,
      }),
    })
    .to('rag.chunks.faq', { encode: chunkEventEncoder(chunkEventJsonCodec) })
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipeBatch([
    { topic: 'faq.answers', key: 'a1', value: { q: 'How do I export invoices?', vec: [0.1, 0.2, 0.3] } },
    { topic: 'faq.answers', key: 'a2', value: { q: 'Broken', vec: [1, 2] } },
  ])
  const out = driver.readOutput('rag.chunks.faq').map((r) => chunkEventJsonCodec.decode(r.rawValue) as ChunkEvent)
  assert.equal(out.length, 1)
  assert.deepEqual(
    Array.from(out[0].embedding).map((x) => Math.round(x * 10) / 10),
    [0.1, 0.2, 0.3],
  )
  assert.equal(out[0].lineage.embedding_model, 'upstream-e5@3')
  const [dead] = driver.readDeadLetters()
  assert.equal(dead.key, 'a2')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.code], 'RS_RECORD_INVALID')
  assert.match(dead.headers[DEAD_LETTER_HEADERS.message], /has 2 dimensions, the topology expects 3/)
})

test('end to end with the real services: Debezium Avro in, Avro chunk events out (read by an independent registry client); a replay into v2 costs 0 embedding calls', async (t) => {
  const { Redis } = await import('ioredis')
  const { SchemaRegistry } = await import('@kafkajs/confluent-schema-registry')
  const { AvroWireDecoder } = await import('../../src/serde/wire.ts')
  const { chunkEventAvroCodec } = await import('../../src/serde/chunk-event-codec.ts')
  const { OpenAIProvider } = await import('../../src/embedding/openai.ts')
  const { RedisEmbeddingCache } = await import('../../src/embedding/cache.ts')
  const { startFakeOpenAI } = await import('../embedding/fake-openai.ts')
  const { registerAvro, registry, registryUrl, deleteSubject } = await import('../serde/registry-helpers.ts')
  const { endpoints, uniqueName } = await import('../support/stack.ts')

  const schemas = JSON.parse(
    readFileSync(new URL('../fixtures/debezium/customers.avro-schemas.json', import.meta.url), 'utf8'),
  )
  const source = uniqueName('dbserver1.inventory.customers')
  const keyId = await registerAvro(t, `${source}-key`, schemas.keySchema)
  const valueId = await registerAvro(t, `${source}-value`, schemas.valueSchema)
  const fake = await startFakeOpenAI(t, { dimensions: 384 })
  const redis = new Redis(endpoints.redisUrl)
  const prefix = uniqueName('rs-test-emb')
  t.after(async () => {
    const keys = await redis.keys(`${prefix}:*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })

  const encoder = registry()
  const input = await Promise.all(
    [1, 2, 3].map(async (id) => ({
      topic: source,
      key: await encoder.encode(keyId, { id }),
      value: await encoder.encode(valueId, {
        ...change('c', id, notes({ 0: `c${id}`, 1: `c${id}`, 2: `c${id}` }, 3)),
        transaction: null,
        source: { ...fixture.records[1].value.source, lsn: 5000 + id, xmin: null },
      }),
    })),
  )

  async function run(version: string) {
    const out = uniqueName(`rag.chunks.support.${version}`)
    t.after(() => deleteSubject(`${out}-value`))
    const codec = await chunkEventAvroCodec({ registryUrl, topic: out })
    const cache = new RedisEmbeddingCache(redis, { prefix })
    const embedder = new Embedder(
      new OpenAIProvider(
        { kind: 'openai', model: 'e2e', dimensions: 384, baseUrl: fake.baseUrl, maxBatchItems: 4 },
        {},
      ),
      { cache },
    )
    const customers = cdcTableDecoder(
      new DebeziumDecoder({ valueFormat: 'avro', avro: new AvroWireDecoder(registry(), registryUrl) }),
    )
    const b = new TopologyBuilder({ applicationId: `support-${version}` })
    b.cdcTable<Record<string, unknown>>(source, { name: 'customers', ...customers })
      .stage({
        name: 'chunk',
        kind: 'chunk+embed',
        stores: ['chunk-sets'],
        processor: chunkEmbedStage<Record<string, unknown>>({
          topology: 'support',
          version,
          entityType: 'customer',
          store: 'chunk-sets',
          embedder,
          chunker: createChunker({ strategy: { kind: 'recursive', size: 300, overlap: 0 } }),
          text: (c) => String(c.notes),
        }),
      })
      .to(out, { encode: chunkEventEncoder(codec) })
    const driver = new TopologyTestDriver(b.build(), { partitions: 2 })
    await driver.pipeBatch(input)
    await cache.close() // the worker stops: its queued vectors are written
    return { records: driver.readOutput(out), embedder }
  }

  const v1 = await run('v1')
  assert.equal(v1.records.length, 9)
  const independent = new SchemaRegistry({ host: registryUrl })
  for (const r of v1.records) {
    const event = (await independent.decode(r.rawValue as Buffer)) as ChunkEvent
    assert.equal(event.chunk_id, r.key)
    assert.equal(event.embedding.length, 384)
    assert.equal(event.lineage.source_topic, source)
    assert.equal(event.lineage.embedding_model, 'openai:e2e@384')
  }
  const callsAfterV1 = fake.requests.length
  assert.equal(callsAfterV1, 3) // 9 chunks, 4 per call

  const v2 = await run('v2') // re-index from earliest into a new version: same texts, same model
  assert.equal(v2.records.length, 9)
  assert.equal(fake.requests.length, callsAfterV1, 'the replay called the embedding service')
  assert.equal(v2.embedder.metrics().cacheHits, 9)
})
