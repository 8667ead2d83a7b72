// RagServices against the real Redis and schema registry: nothing connects until open(); open()
// registers the chunk-event schema and checks the embedder, once; a failed open is retried by the
// next call instead of being remembered.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import { Redis } from 'ioredis'
import { RagServices, withServicesOpen } from '../../src/config/rag-services.ts'
import { RagstreamError } from '../../src/errors.ts'
import { hashingEmbed } from '../../src/embedding/hashing.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { endpoints, uniqueName } from '../support/stack.ts'

const event = (chunkId: string): ChunkEvent => ({
  chunk_id: chunkId,
  entity_type: 'ticket',
  entity_key: '1',
  chunk_index: 0,
  text: 'hello',
  embedding: hashingEmbed('hello', 384),
  content_hash: 'h',
  metadata: '{}',
  classification: 'internal',
  tenant: null,
  region: null,
  subjects: [],
  policy_version: null,
  lineage: {
    source_topic: 't',
    source_partition: 0,
    source_offset: 1,
    source_timestamp_ms: 1,
    source_position: null,
    source_table: null,
    topology: 'x',
    topology_version: 'v1',
    chunker: 'whole',
    embedding_model: 'hashing:v1@384',
    emitted_at_ms: 1,
  },
})

test('RagServices.fromEnv connects nothing until open(): a topology file can be imported (describe) without services', async () => {
  const services = RagServices.fromEnv({
    chunkTopic: 'rag.chunks.never-opened',
    env: { RAGSTREAM_REDIS_URL: 'redis://127.0.0.1:1' },
  })
  assert.throws(
    () => services.chunkEvents.encode(event('a')),
    /chunk-event codec for rag\.chunks\.never-opened is not open/,
  )
  await services.close()
})

test('RagServices.open registers the chunk-event schema under <topic>-value and verifies the embedder, once', async (t) => {
  const chunkTopic = uniqueName('rag.chunks.services-test')
  t.after(() => deleteSubject(`${chunkTopic}-value`))
  const services = new RagServices({
    redis: new Redis(endpoints.redisUrl, { lazyConnect: true }),
    registryUrl: endpoints.schemaRegistryUrl,
    chunkTopic,
    cachePrefix: uniqueName('rs-test-emb'),
  })
  t.after(() => services.close())
  const calls: number[] = []
  const stage = withServicesOpen(services, {
    process: async (items: readonly number[]) => (calls.push(items.length), items.map(() => [])),
  })
  await Promise.all([stage.process([1, 2]), stage.process([3])])
  assert.deepEqual(calls.sort(), [1, 2])
  assert.equal(services.open(), services.open(), 'one open for every batch')
  const encoded = services.chunkEvents.encode(event('a'))!
  assert.equal(encoded[0], 0)
  const decoded = (await new SchemaRegistry({ host: endpoints.schemaRegistryUrl }).decode(encoded)) as ChunkEvent
  assert.equal(decoded.chunk_id, 'a')
  assert.equal(services.chunkEvents.encode(null), null)
  assert.equal(services.embedder.metrics().calls, 1, 'verify() made one provider call')
})

test('RagServices.open: an unreachable registry fails the batch with RS_SERVICE_UNAVAILABLE, and the next batch tries again', async (t) => {
  const services = new RagServices({
    redis: new Redis(endpoints.redisUrl, { lazyConnect: true }),
    registryUrl: 'http://127.0.0.1:1/apis/ccompat/v7',
    chunkTopic: uniqueName('rag.chunks.unreachable'),
  })
  t.after(() => services.close())
  const unavailable = (error: unknown): boolean =>
    error instanceof RagstreamError && error.code === 'RS_SERVICE_UNAVAILABLE' && error.retriable
  const first = services.open()
  await assert.rejects(first, unavailable)
  const second = services.open()
  assert.notEqual(second, first, 'a failed open is not remembered')
  await assert.rejects(second, unavailable)
})
