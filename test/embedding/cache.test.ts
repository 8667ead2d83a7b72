import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { embeddingCacheBoundFromEnv, RedisEmbeddingCache } from '../../src/embedding/cache.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import { ConfigError, RagstreamError } from '../../src/errors.ts'
import { withTelemetry, type TelemetryEvent } from '../../src/observability/telemetry.ts'
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

test('a TTL is applied when configured, and a hit renews it (entries in use do not expire)', async (t) => {
  const { redis, prefix } = await redisWithPrefix(t)
  const cache = new RedisEmbeddingCache(redis, { prefix, ttlSeconds: 100 })
  await cache.setMany('hashing:v1@2', [
    ['h', Float32Array.from([1, 0])],
    ['cold', Float32Array.from([0, 1])],
  ])
  const key = `${prefix}:{hashing:v1@2}:h`
  const ttl = await redis.ttl(key)
  assert.ok(ttl > 90 && ttl <= 100)
  await redis.expire(key, 5)
  await redis.expire(`${prefix}:{hashing:v1@2}:cold`, 5)
  assert.deepEqual(await cache.getMany('hashing:v1@2', ['h'], 2), [Float32Array.from([1, 0])])
  assert.ok((await redis.ttl(key)) > 90, 'the hit renewed the TTL')
  assert.ok((await redis.ttl(`${prefix}:{hashing:v1@2}:cold`)) <= 5, 'an entry not read keeps its time')
})

test('maxEntries keeps a model at that many vectors, evicting the least recently used; delete still works', async (t) => {
  const { redis, prefix } = await redisWithPrefix(t)
  const cache = new RedisEmbeddingCache(redis, { prefix, maxEntries: 3 })
  const ns = 'hashing:v1@2'
  const v = (x: number) => Float32Array.from([x, x])
  assert.equal(
    await cache.setMany(ns, [
      ['a', v(1)],
      ['b', v(2)],
      ['c', v(3)],
    ]),
    0,
  )
  await new Promise((resolve) => setTimeout(resolve, 5))
  // Reading "a" makes "b" the least recently used.
  assert.deepEqual(await cache.getMany(ns, ['a'], 2), [v(1)])
  await new Promise((resolve) => setTimeout(resolve, 5))
  assert.equal(await cache.setMany(ns, [['d', v(4)]]), 1)
  assert.deepEqual(await cache.getMany(ns, ['a', 'b', 'c', 'd'], 2), [v(1), undefined, v(3), v(4)])
  // Another model has a bound of its own.
  await cache.setMany('other@2', [['x', v(9)]])
  assert.deepEqual(await cache.getMany('other@2', ['x'], 2), [v(9)])
  // The store never holds more than the bound, whatever the batch size.
  const many = Array.from({ length: 50 }, (_, i) => [`m${i}`, v(i)] as const)
  assert.equal(await cache.setMany(ns, many), 50)
  const vectorKeys = (await redis.keys(`${prefix}:{${ns}}:*`)).filter((k) => !k.endsWith(':lru'))
  assert.equal(vectorKeys.length, 3)
  assert.equal(await redis.zcard(`${prefix}:{${ns}}:lru`), 3)
  // Forgetting deletes the vector and its place in the index.
  const [gone, kept] = vectorKeys.map((k) => k.slice(k.lastIndexOf(':') + 1))
  assert.equal(await cache.delete(ns, [gone, 'zz']), 1)
  assert.deepEqual(await cache.getMany(ns, [gone, kept], 2), [undefined, v(Number(kept.slice(1)))])
  assert.equal(await redis.zscore(`${prefix}:{${ns}}:lru`, gone), null)
})

test('the Embedder reports hits, misses and evictions, so the hit rate and the bound show in metrics', async (t) => {
  const { redis, prefix } = await redisWithPrefix(t)
  const embedder = new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 4 }), {
    cache: new RedisEmbeddingCache(redis, { prefix, maxEntries: 2 }),
  })
  const events: TelemetryEvent[] = []
  const items = (...texts: string[]) => texts.map((text) => ({ text, contentHash: `h-${text}` }))
  await withTelemetry(
    (e) => events.push(e),
    async () => {
      await embedder.embed(items('one', 'two'))
      await embedder.embed(items('one', 'three'))
    },
  )
  assert.deepEqual(
    events.filter((e) => e.kind === 'embedding-cache' || e.kind === 'embedding-cache-evictions'),
    [
      { kind: 'embedding-cache', model: 'hashing:v1@4', hits: 0, misses: 2 },
      { kind: 'embedding-cache', model: 'hashing:v1@4', hits: 1, misses: 1 },
      { kind: 'embedding-cache-evictions', model: 'hashing:v1@4', evicted: 1 },
    ],
  )
  assert.deepEqual([embedder.metrics().cacheHits, embedder.metrics().cacheMisses], [1, 3])
})

test('the bound from the environment: a million entries by default, 0 for none, one error naming each bad field', () => {
  assert.deepEqual(embeddingCacheBoundFromEnv({}), { maxEntries: 1_000_000 })
  assert.deepEqual(embeddingCacheBoundFromEnv({ RAGSTREAM_EMBEDDING_CACHE_MAX_ENTRIES: '0' }), {})
  assert.deepEqual(
    embeddingCacheBoundFromEnv({
      RAGSTREAM_EMBEDDING_CACHE_MAX_ENTRIES: '500000',
      RAGSTREAM_EMBEDDING_CACHE_TTL_SECONDS: '604800',
    }),
    { maxEntries: 500_000, ttlSeconds: 604_800 },
  )
  assert.throws(
    () =>
      embeddingCacheBoundFromEnv({
        RAGSTREAM_EMBEDDING_CACHE_MAX_ENTRIES: 'lots',
        RAGSTREAM_EMBEDDING_CACHE_TTL_SECONDS: '-1',
      }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.problems.map((p) => p.path).join() ===
        '/embedding/cache/maxEntries (RAGSTREAM_EMBEDDING_CACHE_MAX_ENTRIES),/embedding/cache/ttlSeconds (RAGSTREAM_EMBEDDING_CACHE_TTL_SECONDS)',
  )
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

for (const bounded of [false, true]) {
  test(`Redis Cluster${bounded ? ', bounded' : ''}: one round trip per batch works because every key of a model shares a hash tag`, async (t) => {
    const { Cluster } = await import('ioredis')
    const cluster = new Cluster(endpoints.redisClusterNodes.map((n) => ({ host: n.host, port: n.port })))
    const prefix = uniqueName('rs-test-emb')
    const cache = new RedisEmbeddingCache(cluster, { prefix, ...(bounded ? { maxEntries: 40, ttlSeconds: 60 } : {}) })
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
    // Bounded at 40: storing 50 at once evicted 10 of them (ties of one batch go in hash order).
    assert.equal(got.filter((v) => v === undefined).length, bounded ? 10 : 0)
    got.forEach((v, i) => assert.ok(v === undefined || v[0] === i))
    if (bounded) await cluster.del(`${prefix}:{openai:m@2}:lru`)
  })
}
