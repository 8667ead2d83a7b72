import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { existsSync, readdirSync } from 'node:fs'
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import avsc from 'avsc'
import { Consumer, Producer } from '@platformatic/kafka'
import { AvroValueCodec } from '../../src/serde/avro-codec.ts'
import { CHUNK_EVENT_SCHEMA, type ChunkEvent } from '../../src/serde/chunk-event.ts'
import { chunkEventAvroCodec, chunkEventJsonCodec } from '../../src/serde/chunk-event-codec.ts'
import { avroTypeOptions, wireHeader } from '../../src/serde/wire.ts'
import { hashingEmbed } from '../../src/embedding/hashing.ts'
import { RagstreamError } from '../../src/errors.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { deleteSubject, registryUrl } from './registry-helpers.ts'

export function sampleEvent(index = 0, dimensions = 384): ChunkEvent {
  const text = `Billing FAQ\nCustomers can export invoices from the billing page (part ${index}).`
  return {
    chunk_id: `3f2a9c${String(index).padStart(26, '0')}`,
    entity_type: 'article',
    entity_key: 'kb-17',
    chunk_index: index,
    text,
    embedding: hashingEmbed(text, dimensions),
    content_hash: 'a'.repeat(64),
    metadata: JSON.stringify({ title: 'Billing FAQ', lang: 'en' }),
    classification: 'internal',
    tenant: 't1',
    region: 'eu',
    subjects: ['customer:42'],
    policy_version: 'p3',
    lineage: {
      source_topic: 'dbserver1.kb.articles',
      source_partition: 2,
      source_offset: 1_234_567,
      source_timestamp_ms: 1764150000000,
      source_position: '33816576',
      source_table: 'kb.articles',
      topology: 'support',
      topology_version: 'v1',
      chunker: 'recursive(size=800,overlap=100,unit=chars)',
      embedding_model: 'hashing:v1@384',
      emitted_at_ms: 1764150001000,
      change: {
        topic: 'dbserver1.kb.authors',
        partition: 0,
        offset: 77,
        timestamp_ms: 1764150000900,
        appended_at_ms: 1764150000950,
      },
    },
  }
}

function withoutField(
  schema: Readonly<Record<string, unknown>>,
  record: string,
  field: string,
): Record<string, unknown> {
  const copy = structuredClone(schema) as Record<string, unknown>
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(visit)
    if (node === null || typeof node !== 'object') return
    const n = node as { name?: string; fields?: { name: string; type: unknown }[] }
    if (n.name === record && n.fields) n.fields = n.fields.filter((f) => f.name !== field)
    for (const value of Object.values(n)) visit(value)
  }
  visit(copy)
  return copy
}

const subjectOf = (t: { after: (fn: () => Promise<void>) => void }) => {
  const topic = uniqueName('rag.chunks.support')
  t.after(() => deleteSubject(`${topic}-value`))
  return topic
}

test('Avro chunk events round-trip through the real registry and an independent registry client decodes them', async (t) => {
  const topic = subjectOf(t)
  const codec = await chunkEventAvroCodec({ registryUrl, topic })
  assert.equal(codec.subject, `${topic}-value`)
  const event = sampleEvent(3)
  const bytes = codec.encode(event) as Buffer
  assert.equal(bytes[0], 0)
  assert.equal(bytes.readUInt32BE(1), codec.schemaId)

  const independent = new SchemaRegistry({ host: registryUrl })
  const decoded = (await independent.decode(bytes)) as ChunkEvent
  assert.deepEqual(
    {
      ...decoded,
      embedding: Float32Array.from(decoded.embedding),
      lineage: { ...decoded.lineage, change: { ...decoded.lineage.change! } },
    },
    event,
  )

  await codec.prepare([bytes])
  const own = codec.decode(bytes) as ChunkEvent
  assert.equal(own.chunk_id, event.chunk_id)
  assert.deepEqual(Float32Array.from(own.embedding), event.embedding)
  assert.equal(codec.encode(null), null)
  assert.equal(codec.decode(null), null)

  const config = (await (await fetch(`${registryUrl}/config/${topic}-value`)).json()) as { compatibilityLevel: string }
  assert.equal(config.compatibilityLevel, 'BACKWARD')
  // Idempotent startup: a second instance gets the same id.
  assert.equal((await chunkEventAvroCodec({ registryUrl, topic })).schemaId, codec.schemaId)
})

test("Avro encode writes each value once into its scratch buffer: the bytes are the wire header and avsc's own encoding, whatever the size, and each result is its own copy", async (t) => {
  const topic = subjectOf(t)
  const codec = await chunkEventAvroCodec({ registryUrl, topic })
  const type = avsc.Type.forSchema(CHUNK_EVENT_SCHEMA as avsc.Schema, avroTypeOptions() as never)
  const expected = (event: ChunkEvent) =>
    Buffer.concat([wireHeader(codec.schemaId), type.toBuffer({ ...event, embedding: Array.from(event.embedding) })])
  // 384 dimensions fit the first scratch buffer; 1536 and 4000 make it grow (twice), then small fits again.
  const events = [sampleEvent(1), sampleEvent(2, 1536), sampleEvent(3, 4000), sampleEvent(4, 8), sampleEvent(5)]
  const encoded = events.map((e) => codec.encode(e) as Buffer)
  for (let i = 0; i < events.length; i++) assert.deepEqual(encoded[i], expected(events[i]), `event ${i}`)
  // A later encode never changes an earlier result (the scratch buffer is copied out).
  assert.deepEqual(encoded[0], expected(events[0]))
  assert.deepEqual(encoded[2], expected(events[2]))
  await codec.prepare(encoded)
  assert.deepEqual(Float32Array.from(codec.decode(encoded[2])!.embedding), events[2].embedding)
})

test('a compatible schema change (new field with a default) passes at startup; old events still decode', async (t) => {
  const topic = subjectOf(t)
  const previous = withoutField(CHUNK_EVENT_SCHEMA, 'Lineage', 'source_table')
  const v1 = await AvroValueCodec.forTopic<ChunkEvent>({ registryUrl, topic, schema: previous }, (e) => ({
    ...e,
    embedding: Array.from(e.embedding),
  }))
  const old = v1.encode(sampleEvent(1))
  const v2 = await chunkEventAvroCodec({ registryUrl, topic })
  assert.notEqual(v2.schemaId, v1.schemaId)
  await v2.prepare([old])
  assert.equal(v2.decode(old)?.lineage.source_topic, 'dbserver1.kb.articles')
})

test('events written before lineage.change existed still decode, without a change; new ones carry it', async (t) => {
  const topic = subjectOf(t)
  const previous = withoutField(CHUNK_EVENT_SCHEMA, 'Lineage', 'change')
  const v1 = await AvroValueCodec.forTopic<ChunkEvent>({ registryUrl, topic, schema: previous }, (e) => ({
    ...e,
    embedding: Array.from(e.embedding),
  }))
  const { change: _change, ...lineage } = sampleEvent(1).lineage
  const old = v1.encode({ ...sampleEvent(1), lineage })
  const v2 = await chunkEventAvroCodec({ registryUrl, topic })
  assert.notEqual(v2.schemaId, v1.schemaId)
  const current = v2.encode(sampleEvent(2))
  await v2.prepare([old, current])
  assert.equal(v2.decode(old)?.lineage.change ?? null, null)
  assert.deepEqual({ ...v2.decode(current)?.lineage.change }, sampleEvent(2).lineage.change)
})

test('events written before change.appended_at_ms existed still decode, the append time null; new ones carry it', async (t) => {
  const topic = subjectOf(t)
  const previous = withoutField(CHUNK_EVENT_SCHEMA, 'Change', 'appended_at_ms')
  const v1 = await AvroValueCodec.forTopic<ChunkEvent>({ registryUrl, topic, schema: previous }, (e) => ({
    ...e,
    embedding: Array.from(e.embedding),
  }))
  const { appended_at_ms: _appended, ...change } = sampleEvent(1).lineage.change!
  const old = v1.encode({ ...sampleEvent(1), lineage: { ...sampleEvent(1).lineage, change } })
  const v2 = await chunkEventAvroCodec({ registryUrl, topic })
  assert.notEqual(v2.schemaId, v1.schemaId)
  const current = v2.encode(sampleEvent(2))
  await v2.prepare([old, current])
  // Decoded with its writer schema: the field is absent (the sink reads that as null).
  const decoded = v2.decode(old)?.lineage.change
  assert.equal(decoded?.appended_at_ms ?? null, null)
  assert.equal(decoded?.timestamp_ms, change.timestamp_ms)
  assert.equal(v2.decode(current)?.lineage.change?.appended_at_ms, 1764150000950)
})

test('an incompatible schema change fails at startup with RS_SCHEMA_INCOMPATIBLE naming the subject and the field', async (t) => {
  const topic = subjectOf(t)
  await chunkEventAvroCodec({ registryUrl, topic })
  const breaking = structuredClone(CHUNK_EVENT_SCHEMA) as { fields: { name: string; type: unknown }[] }
  breaking.fields.push({ name: 'owner_id', type: 'string' }) // no default: new readers cannot read old events
  await assert.rejects(AvroValueCodec.forTopic({ registryUrl, topic, schema: breaking }), (e: unknown) => {
    assert.ok(e instanceof RagstreamError)
    assert.equal(e.code, 'RS_SCHEMA_INCOMPATIBLE')
    assert.equal(e.retriable, false)
    assert.match(
      e.message,
      new RegExp(
        `schema for subject ${topic.replace(/\./g, '\\.')}-value is not BACKWARD-compatible with registered version 1`,
      ),
    )
    assert.match(e.message, /owner_id/)
    assert.match(e.hint ?? '', /new fields need defaults/)
    return true
  })
  const retyped = structuredClone(CHUNK_EVENT_SCHEMA) as { fields: { name: string; type: unknown }[] }
  retyped.fields.find((f) => f.name === 'chunk_index')!.type = 'string'
  await assert.rejects(
    AvroValueCodec.forTopic({ registryUrl, topic, schema: retyped }),
    /RS_SCHEMA_INCOMPATIBLE|not BACKWARD-compatible/,
  )
})

test('encoding an event that breaks the schema is RS_RECORD_INVALID naming the field', async (t) => {
  const codec = await chunkEventAvroCodec({ registryUrl, topic: subjectOf(t) })
  const bad = { ...sampleEvent(), chunk_index: 'one' } as unknown as ChunkEvent
  assert.throws(
    () => codec.encode(bad),
    (e: unknown) =>
      e instanceof RagstreamError && e.code === 'RS_RECORD_INVALID' && /invalid chunk_index/.test(e.message),
  )
})

test('JSON fallback codec: same field names, embedding as numbers, tombstone is null', () => {
  const event = sampleEvent(2)
  const bytes = chunkEventJsonCodec.encode(event) as Buffer
  const decoded = chunkEventJsonCodec.decode(bytes) as ChunkEvent
  assert.deepEqual({ ...decoded, embedding: Float32Array.from(decoded.embedding) }, event)
  assert.equal(chunkEventJsonCodec.encode(null), null)
  assert.equal(chunkEventJsonCodec.decode(null), null)
})

const execFileAsync = promisify(execFile)

function kafkaClasspath(): string | undefined {
  const stack = process.env.RAGSTREAM_STACK_DIR ?? new URL('../../.stack', import.meta.url).pathname
  const dir = existsSync(`${stack}/kafka`) ? readdirSync(`${stack}/kafka`).find((d) => d.startsWith('lib-')) : undefined
  return dir ? `${stack}/kafka/${dir}/*` : undefined
}

test('chunk events on a real topic: an independent consumer decodes them with the registry client alone; the stock console consumer reads them', async (t) => {
  const topic = subjectOf(t)
  await createTopics(t, [topic], 1)
  const codec = await chunkEventAvroCodec({ registryUrl, topic })
  const events = [sampleEvent(0), sampleEvent(1)]
  const producer = new Producer({ clientId: uniqueName('serde-test'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => producer.close())
  await producer.send({
    messages: [
      ...events.map((e) => ({ topic, key: Buffer.from(e.chunk_id), value: codec.encode(e) as Buffer })),
      { topic, key: Buffer.from(events[1].chunk_id), value: null as unknown as Buffer }, // tombstone
    ],
  })

  const consumer = new Consumer({
    groupId: uniqueName('serde-reader'),
    clientId: uniqueName('serde-reader'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    maxWaitTime: 200,
  })
  const received: { key: string; value: Buffer | null }[] = []
  try {
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false })
    const deadline = Date.now() + 15_000
    const timer = setInterval(() => {
      if (received.length >= 3 || Date.now() > deadline) void stream.close()
    }, 100)
    for await (const m of stream) {
      const value = m.value as Buffer | null | undefined
      received.push({ key: (m.key as Buffer).toString(), value: value && value.length > 0 ? value : null })
    }
    clearInterval(timer)
  } finally {
    await consumer.close(true)
  }
  assert.equal(received.length, 3)
  const independent = new SchemaRegistry({ host: registryUrl })
  for (const [i, e] of events.entries()) {
    const decoded = (await independent.decode(received[i].value as Buffer)) as ChunkEvent
    assert.equal(received[i].key, e.chunk_id)
    assert.equal(decoded.text, e.text)
    assert.equal(decoded.embedding.length, 384)
  }
  assert.equal(received[2].value, null)

  const classpath = kafkaClasspath()
  assert.ok(classpath, "the local stack's Kafka jars (scripts/stack.sh up) are needed for the console consumer")
  const { stdout } = await execFileAsync(
    'java',
    [
      '-cp',
      classpath,
      'org.apache.kafka.tools.consumer.ConsoleConsumer',
      '--bootstrap-server',
      endpoints.kafkaBrokers[0],
      '--topic',
      topic,
      '--from-beginning',
      '--max-messages',
      '3',
      '--timeout-ms',
      '20000',
      '--isolation-level',
      'read_committed',
      '--property',
      'print.key=true',
      '--property',
      'key.separator=|',
      '--property',
      'line.separator=<EOR>',
      '--property',
      'null.literal=TOMBSTONE',
    ],
    { timeout: 60_000, encoding: 'latin1' },
  )
  const printed = stdout
    .split('<EOR>')
    .filter((r) => r.length > 0)
    .map((r) => [r.slice(0, r.indexOf('|')), r.slice(r.indexOf('|') + 1)])
  assert.deepEqual(
    printed.map(([key]) => key),
    [events[0].chunk_id, events[1].chunk_id, events[1].chunk_id],
  )
  assert.deepEqual(
    printed.map(([, value]) => value === 'TOMBSTONE'),
    [false, false, true],
  )
})
