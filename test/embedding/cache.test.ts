import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { RedisEmbeddingCache } from '../../src/embedding/cache.ts'
import { RagstreamError } from '../../src/errors.ts'
import { endpoints, uniqueName } from '../support/stack.ts'

async function redisWithPrefix(t: { after: (fn: () => Promise<void>) => void }) {
  const redis = new Redis(endpoints.redisUrl)
  const prefix = uniqueName('rs-test-emb')
  t.after(async () => {
    const keys = await redis.keys(`${prefix}:*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })
  return { redis, prefix }
}

test('vectors round-trip as float32 bytes under a model hash tag; unknown hashes are misses', async (t) => {
  const { redis, prefix } = await redisWithPrefix(t)
  const cache = new RedisEmbeddingCache(redis, { prefix })
  const v = Float32Array.from([0.25, -1, 3.5])
  await cache.setMany('openai:m@3', [
    ['aa', v],
    ['bb', Float32Array.from([1, 2, 3])],
  ])
  assert.deepEqual(await cache.getMany('openai:m@3', ['aa', 'cc', 'bb'], 3), [
    v,
    undefined,
    Float32Array.from([1, 2, 3]),
  ])
  assert.deepEqual((await redis.keys(`${prefix}:*`)).sort(), [`${prefix}:{openai:m@3}:aa`, `${prefix}:{openai:m@3}:bb`])
  // A vector of another size under the same name is a miss, not a wrong answer.
  assert.deepEqual(await cache.getMany('openai:m@3', ['aa'], 4), [undefined])
  assert.equal(await cache.delete('openai:m@3', ['aa', 'zz']), 1)
  assert.deepEqual(await cache.getMany('openai:m@3', ['aa'], 3), [undefined])
})

test('a TTL is applied when configured', async (t) => {
  const { redis, prefix } = await redisWithPrefix(t)
  await new RedisEmbeddingCache(redis, { prefix, ttlSeconds: 100 }).setMany('hashing:v1@2', [
    ['h', Float32Array.from([1, 0])],
  ])
  const ttl = await redis.ttl(`${prefix}:{hashing:v1@2}:h`)
  assert.ok(ttl > 90 && ttl <= 100)
})

test('Redis down is RS_SERVICE_UNAVAILABLE (retriable), never a silent miss', async () => {
  const redis = new Redis('redis://127.0.0.1:1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  })
  const cache = new RedisEmbeddingCache(redis, { address: 'redis://127.0.0.1:1' })
  await assert.rejects(
    cache.getMany('m', ['x'], 3),
    (e: unknown) => e instanceof RagstreamError && e.code === 'RS_SERVICE_UNAVAILABLE' && e.retriable,
  )
  redis.disconnect()
})

test('Redis Cluster: one MGET per batch works because every key of a model shares a hash tag', async (t) => {
  const { Cluster } = await import('ioredis')
  const cluster = new Cluster(endpoints.redisClusterNodes.map((n) => ({ host: n.host, port: n.port })))
  const prefix = uniqueName('rs-test-emb')
  const cache = new RedisEmbeddingCache(cluster, { prefix })
  const hashes = Array.from({ length: 50 }, (_, i) => `hash-${i}`)
  t.after(async () => {
    await cache.delete('openai:m@2', hashes)
    await cluster.quit()
  })
  await cache.setMany(
    'openai:m@2',
    hashes.map((h, i) => [h, Float32Array.from([i, -i])] as const),
  )
  const got = await cache.getMany('openai:m@2', hashes, 2)
  assert.deepEqual(
    got.map((v) => v?.[0]),
    hashes.map((_, i) => i),
  )
})
