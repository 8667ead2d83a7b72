// RagServices for a test: the real Redis and schema registry, a fresh embedding-cache prefix and a
// fresh chunk topic subject, both removed when the test ends. Chunk events decoded by an independent
// @kafkajs/confluent-schema-registry client.
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import { Redis } from 'ioredis'
import { RagServices } from '../../src/config/rag-services.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { endpoints, uniqueName } from './stack.ts'
import { deleteKeys } from './local.ts'

export async function testRagServices(
  t: { after: (fn: () => Promise<void>) => void },
  chunkTopic: string,
): Promise<RagServices> {
  const redis = new Redis(endpoints.redisUrl, { lazyConnect: true })
  const cachePrefix = uniqueName('rs-test-emb')
  const services = new RagServices({
    redis,
    registryUrl: endpoints.schemaRegistryUrl,
    chunkTopic,
    cachePrefix,
    redisAddress: endpoints.redisUrl,
  })
  t.after(async () => {
    await services.embeddingCache.flush?.().catch(() => {}) // nothing written behind after the keys are gone
    await deleteKeys(redis, `${cachePrefix}:*`)
    await services.close()
    await deleteSubject(`${chunkTopic}-value`)
  })
  return services
}

/** Decodes chunk event values (null stays null) with a registry client that shares no code with ragstream's codec. */
export async function decodeChunkEvents(values: readonly (Buffer | null)[]): Promise<(ChunkEvent | null)[]> {
  const registry = new SchemaRegistry({ host: endpoints.schemaRegistryUrl })
  return Promise.all(values.map(async (v) => (v === null ? null : ((await registry.decode(v)) as ChunkEvent))))
}
