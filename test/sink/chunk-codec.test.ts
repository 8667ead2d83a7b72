import assert from 'node:assert/strict'
import { test } from 'node:test'
import avsc from 'avsc'
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import { CHUNK_EVENT_SCHEMA } from '../../src/serde/chunk-event.ts'
import { avroTypeOptions, wireHeader } from '../../src/serde/wire.ts'
import { ChunkDecoder, type ChunkRow, type SinkEvent } from '../../src/sink/chunk-codec.ts'

// The registry client's type for the chunk-event schema (what createSchemaRegistry's getSchema returns).
const type = avsc.Type.forSchema(CHUNK_EVENT_SCHEMA as avsc.Schema, avroTypeOptions() as never)
const registry = { getSchema: async () => type } as unknown as SchemaRegistry

function record(embedding: number[], offset = 1n) {
  const value = {
    chunk_id: 'c1',
    entity_type: 'ticket',
    entity_key: '42',
    chunk_index: 0,
    text: 'Ticket 42',
    embedding,
    content_hash: 'a'.repeat(64),
    metadata: '{"title":"Ticket 42"}',
    classification: 'internal',
    tenant: 'acme',
    region: 'eu',
    subjects: ['customer:42'],
    policy_version: 'p@1',
    lineage: {
      source_topic: 'src.tickets',
      source_partition: 1,
      source_offset: 2 ** 40 + 3,
      source_timestamp_ms: 1_780_000_000_000,
      source_position: null,
      source_table: 'tickets',
      topology: 't',
      topology_version: 'v1',
      chunker: 'recursive',
      embedding_model: 'hashing:v1@4',
      emitted_at_ms: 1_780_000_000_005,
      change: {
        topic: 'src.tickets',
        partition: 1,
        offset: 7,
        timestamp_ms: 1_780_000_000_001,
        appended_at_ms: 1_780_000_000_002,
      },
    },
  }
  return {
    topic: 'rag.chunks.t',
    partition: 0,
    offset,
    key: Buffer.from('c1'),
    value: Buffer.concat([wireHeader(9), type.toBuffer(value)]),
  }
}

async function decode(embedding: number[], dims = embedding.length): Promise<SinkEvent> {
  const decoder = new ChunkDecoder(registry, dims)
  const r = record(embedding)
  await decoder.prepare([r])
  return decoder.decode(r)
}

test('the embedding reaches the row as the pgvector text it always was, read as one copy of its floats', async () => {
  const floats = Array.from({ length: 384 }, (_, i) => Math.fround(Math.sin(i * 7) * 10 ** ((i % 16) - 8)))
  floats[3] = 0
  floats[4] = Math.fround(-1e-45)
  floats[5] = Math.fround(3.4e38)
  const event = await decode(floats)
  assert.equal(event.kind, 'upsert')
  const row = (event as { row: ChunkRow }).row
  // What the element-wise read gave: numbers joined with commas.
  assert.equal(
    row.embedding,
    `[${(type.fromBuffer(record(floats).value.subarray(5)) as { embedding: number[] }).embedding.join(',')}]`,
  )
  assert.equal(row.embedding, `[${floats.join(',')}]`)
  assert.equal(row.sourceOffset, String(2 ** 40 + 3))
  assert.equal(row.sourceAppendedAtMs, 1_780_000_000_002)
  assert.equal(row.emittedAtMs, 1_780_000_000_005)
})

test('an embedding of the wrong size or with NaN or infinity is still rejected', async () => {
  const wrong = await decode([1, 2, 3], 4)
  assert.equal(wrong.kind === 'reject' && wrong.row.code, 'RS_EMBEDDING_DIMENSIONS')
  for (const bad of [NaN, Infinity, -Infinity]) {
    const event = await decode([1, bad, 3, 4])
    assert.equal(event.kind === 'reject' && event.row.message, 'embedding contains NaN or infinity')
  }
})
