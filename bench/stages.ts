// Per-record CPU of the RAG stages — decode, chunk (+ chunk-set diff), hashing-embed, Avro encode —
// and Avro vs JSON size and encode time for one 384-d chunk event.
//   node bench/stages.ts        (or: npm run bench -- stages)   needs the schema registry (scripts/stack.sh up)
// Input: Debezium Postgres `op=u` envelopes (JSON with the schema wrapper, JSON schemaless, Avro)
// whose `body` column is a ~4 KB support article of 6 paragraphs; chunked at 800 chars / 100 overlap.
// CPU time is process.cpuUsage (user+system) per operation, after a warm-up, single-threaded.
import { readFileSync } from 'node:fs'
import { DebeziumDecoder } from '../src/cdc/debezium.ts'
import type { EncodedRecord } from '../src/cdc/change-event.ts'
import { createChunker } from '../src/chunking/chunker.ts'
import { chunkFingerprint } from '../src/chunking/chunk-id.ts'
import { ChunkSetStore } from '../src/chunking/chunk-set.ts'
import { hashingEmbed } from '../src/embedding/hashing.ts'
import { MemoryStateStore } from '../src/state/memory-store.ts'
import { chunkEventAvroCodec, chunkEventJsonCodec } from '../src/serde/chunk-event-codec.ts'
import type { ChunkEvent } from '../src/serde/chunk-event.ts'
import { AvroWireDecoder, createSchemaRegistry } from '../src/serde/wire.ts'
import { endpointsFromEnv } from '../src/config/endpoints.ts'
import { SchemaType } from '@kafkajs/confluent-schema-registry'

const registryUrl = endpointsFromEnv().schemaRegistryUrl
const RECORDS = 2000

function cpuUs(fn: () => void, iterations: number): number {
  for (let i = 0; i < Math.min(200, iterations); i++) fn() // warm-up
  globalThis.gc?.()
  const start = process.cpuUsage()
  for (let i = 0; i < iterations; i++) fn()
  const used = process.cpuUsage(start)
  return (used.user + used.system) / iterations
}

const sentences = [
  'Customers can export invoices from the billing page as PDF or CSV.',
  'Exports run nightly and the files arrive by e-mail within an hour.',
  'If an invoice is missing, check the billing contact in the account settings first.',
  'Refunds for duplicate charges are issued to the original payment method.',
  'Enterprise plans can also pull invoices through the API with a read-only token.',
  'Support agents can re-send an invoice from the admin console on request.',
]
const article = (n: number) =>
  Array.from({ length: 6 }, (_, p) =>
    Array.from({ length: 10 }, (_, s) => sentences[(p + s + n) % sentences.length]).join(' '),
  ).join('\n\n')

// Realistic envelopes from the fixture, with a 4 KB body column.
const fixture = JSON.parse(
  readFileSync(new URL('../test/fixtures/debezium/customers.json', import.meta.url), 'utf8'),
) as { records: { key: unknown; value: { schema: any; payload: any } }[] }
const wrappedTemplate = fixture.records[2].value
const wrapped = (i: number) => {
  const v = structuredClone(wrappedTemplate)
  v.payload.after.notes = article(i)
  v.payload.after.id = i
  return v
}
const jsonRecords: EncodedRecord[] = Array.from({ length: RECORDS }, (_, i) => ({
  topic: 'dbserver1.inventory.customers',
  partition: 0,
  offset: BigInt(i),
  timestamp: 0n,
  key: Buffer.from(JSON.stringify({ schema: fixture.records[2].key, payload: { id: i } })),
  value: Buffer.from(JSON.stringify(wrapped(i))),
}))
const plainRecords: EncodedRecord[] = jsonRecords.map((r, i) => ({
  ...r,
  key: Buffer.from(JSON.stringify({ id: i })),
  value: Buffer.from(JSON.stringify(wrapped(i).payload)),
}))

async function avroRecords(): Promise<{ records: EncodedRecord[]; cleanup: () => Promise<void> }> {
  const schemas = JSON.parse(
    readFileSync(new URL('../test/fixtures/debezium/customers.avro-schemas.json', import.meta.url), 'utf8'),
  )
  const topic = `bench-stages-${process.pid}`
  const registry = createSchemaRegistry(registryUrl)
  const { id: keyId } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(schemas.keySchema) },
    { subject: `${topic}-key` },
  )
  const { id: valueId } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(schemas.valueSchema) },
    { subject: `${topic}-value` },
  )
  const records: EncodedRecord[] = []
  for (let i = 0; i < RECORDS; i++) {
    records.push({
      ...plainRecords[i],
      key: await registry.encode(keyId, { id: i }),
      value: await registry.encode(valueId, wrapped(i).payload),
    })
  }
  const cleanup = async () => {
    for (const s of [`${topic}-key`, `${topic}-value`]) {
      await fetch(`${registryUrl}/subjects/${s}`, { method: 'DELETE' })
      await fetch(`${registryUrl}/subjects/${s}?permanent=true`, { method: 'DELETE' })
    }
  }
  return { records, cleanup }
}

async function main(): Promise<void> {
  const out: [string, string][] = []
  const line = (what: string, value: string) => out.push([what, value])

  // 1. Decode
  const jsonDecoder = new DebeziumDecoder({ valueFormat: 'json' })
  let i = 0
  const decodeWrapped = cpuUs(() => void jsonDecoder.decode(jsonRecords[i++ % RECORDS]), RECORDS * 5)
  const decodePlain = cpuUs(() => void jsonDecoder.decode(plainRecords[i++ % RECORDS]), RECORDS * 5)
  const avro = await avroRecords()
  const avroDecoder = new DebeziumDecoder({
    valueFormat: 'avro',
    avro: new AvroWireDecoder(createSchemaRegistry(registryUrl), registryUrl),
  })
  await avroDecoder.prepare(avro.records)
  const decodeAvro = cpuUs(() => void avroDecoder.decode(avro.records[i++ % RECORDS]), RECORDS * 5)
  await avro.cleanup()
  const kb = (r: EncodedRecord) => `${(r.value!.length / 1024).toFixed(1)} KB`
  line(`decode, Debezium JSON with schema wrapper (${kb(jsonRecords[0])})`, `${decodeWrapped.toFixed(1)} µs/record`)
  line(`decode, Debezium JSON schemaless (${kb(plainRecords[0])})`, `${decodePlain.toFixed(1)} µs/record`)
  line(`decode, Debezium Avro via registry (${kb(avro.records[0])})`, `${decodeAvro.toFixed(1)} µs/record`)

  // 2. Chunk (+ template, ids, hashes) and the chunk-set diff against a store
  const chunker = createChunker({
    strategy: { kind: 'recursive', size: 800, overlap: 100, unit: 'chars' },
    template: '{first_name} {last_name}\n{text}',
  })
  const rows = plainRecords.map((r) => jsonDecoder.decode(r)).map((c) => (c.kind === 'upsert' ? c.row : {}))
  const chunksPerRecord = chunker.chunk({
    topology: 'support',
    entityType: 'customer',
    entityKey: '1',
    text: String(rows[0].notes),
    fields: rows[0],
  }).length
  const chunkUs = cpuUs(() => {
    const r = rows[i++ % RECORDS]
    chunker.chunk({
      topology: 'support',
      entityType: 'customer',
      entityKey: String(r.id),
      text: String(r.notes),
      fields: r,
    })
  }, RECORDS * 2)
  line(
    `chunk (recursive 800/100, template, ids, sha256) → ${chunksPerRecord} chunks/record`,
    `${chunkUs.toFixed(1)} µs/record, ${(chunkUs / chunksPerRecord).toFixed(1)} µs/chunk`,
  )

  const state = new MemoryStateStore('bench-chunks')
  const store = new ChunkSetStore(state)
  const keys = rows.map((r) => ChunkSetStore.keyOf('customer', String(r.id)))
  await state.prefetch(0, keys)
  const prepared = rows.map((r) =>
    chunker
      .chunk({ topology: 'support', entityType: 'customer', entityKey: String(r.id), text: String(r.notes), fields: r })
      .map((c) => ({ ...c, fingerprint: chunkFingerprint(c.contentHash, { first_name: r.first_name }) })),
  )
  for (let k = 0; k < RECORDS; k++) store.update(0, 'customer', String(rows[k].id), prepared[k])
  const diffUs = cpuUs(() => {
    const k = i++ % RECORDS
    store.update(0, 'customer', String(rows[k].id), prepared[k]) // unchanged resend: the common case
  }, RECORDS * 5)
  line('chunk-set diff, unchanged resend (fingerprints + store read)', `${diffUs.toFixed(1)} µs/record`)

  // 3. Hashing embed, 384-d
  const texts = prepared.flat().map((c) => c.text)
  const embedUs = cpuUs(() => void hashingEmbed(texts[i++ % texts.length], 384), texts.length)
  line(
    `hashing embed 384-d (~${Math.round(texts.reduce((s, t) => s + t.length, 0) / texts.length)} chars/chunk)`,
    `${embedUs.toFixed(1)} µs/chunk, ${(embedUs * chunksPerRecord).toFixed(1)} µs/record`,
  )

  // 4. Avro vs JSON encode of a 384-d chunk event
  const topic = `bench-stages-chunks-${process.pid}`
  const codec = await chunkEventAvroCodec({ registryUrl, topic })
  const events: ChunkEvent[] = prepared
    .slice(0, 200)
    .flat()
    .map((c, n) => ({
      chunk_id: c.id,
      entity_type: 'customer',
      entity_key: String(n),
      chunk_index: c.index,
      text: c.text,
      embedding: hashingEmbed(c.text, 384),
      content_hash: c.contentHash,
      metadata: JSON.stringify({ first_name: 'Sally', tier: 'gold' }),
      classification: 'internal',
      tenant: 't1',
      region: 'eu',
      subjects: [`customer:${n}`],
      policy_version: 'p1',
      lineage: {
        source_topic: 'dbserver1.inventory.customers',
        source_partition: 0,
        source_offset: n,
        source_timestamp_ms: 1764150000000,
        source_position: '33822544',
        source_table: 'inventory.customers',
        topology: 'support',
        topology_version: 'v1',
        chunker: chunker.id,
        embedding_model: 'hashing:v1@384',
        emitted_at_ms: 1764150001000,
      },
    }))
  const avroUs = cpuUs(() => void codec.encode(events[i++ % events.length]), 20_000)
  const jsonUs = cpuUs(() => void chunkEventJsonCodec.encode(events[i++ % events.length]), 20_000)
  const avroBytes = events.reduce((s, e) => s + codec.encode(e)!.length, 0) / events.length
  const jsonBytes = events.reduce((s, e) => s + chunkEventJsonCodec.encode(e)!.length, 0) / events.length
  const textBytes = events.reduce((s, e) => s + Buffer.byteLength(e.text), 0) / events.length
  for (const s of [`${topic}-value`]) {
    await fetch(`${registryUrl}/subjects/${s}`, { method: 'DELETE' })
    await fetch(`${registryUrl}/subjects/${s}?permanent=true`, { method: 'DELETE' })
  }
  line(
    'Avro encode, 384-d chunk event (wire format)',
    `${avroUs.toFixed(1)} µs/chunk, ${(avroUs * chunksPerRecord).toFixed(1)} µs/record, ${Math.round(avroBytes)} bytes`,
  )
  line(
    'JSON encode, same event',
    `${jsonUs.toFixed(1)} µs/chunk, ${Math.round(jsonBytes)} bytes (${(jsonBytes / avroBytes).toFixed(2)}× Avro)`,
  )
  line('  of which chunk text', `${Math.round(textBytes)} bytes; embedding 1536 bytes as Avro floats`)

  const total = decodeWrapped + chunkUs + diffUs + embedUs * chunksPerRecord + avroUs * chunksPerRecord
  line(
    'total per input record (wrapped JSON decode → Avro encode)',
    `${total.toFixed(1)} µs CPU ≈ ${Math.round(1e6 / total)} records/s/core`,
  )

  const width = Math.max(...out.map(([w]) => w.length))
  process.stdout.write(`node ${process.version}, ${RECORDS} records\n`)
  for (const [what, value] of out) process.stdout.write(`${what.padEnd(width)}  ${value}\n`)
}

await main()
