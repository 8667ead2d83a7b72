import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { Cluster, Redis } from 'ioredis'
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
  await cache.flush()
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
  await cache.flush()
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
  await cache.flush()
  await new Promise((resolve) => setTimeout(resolve, 5))
  // Reading "a" makes "b" the least recently used.
  assert.deepEqual(await cache.getMany(ns, ['a'], 2), [v(1)])
  await new Promise((resolve) => setTimeout(resolve, 5))
  await cache.setMany(ns, [['d', v(4)]])
  await cache.flush()
  assert.deepEqual(await cache.getMany(ns, ['a', 'b', 'c', 'd'], 2), [v(1), undefined, v(3), v(4)])
  // Another model has a bound of its own.
  await cache.setMany('other@2', [['x', v(9)]])
  await cache.flush()
  assert.deepEqual(await cache.getMany('other@2', ['x'], 2), [v(9)])
  // The store never holds more than the bound, whatever the batch size.
  const many = Array.from({ length: 50 }, (_, i) => [`m${i}`, v(i)] as const)
  await cache.setMany(ns, many)
  await cache.flush()
  const vectorKeys = (await redis.keys(`${prefix}:{${ns}}:*`)).filter((k) => !k.endsWith(':lru'))
  assert.equal(vectorKeys.length, 3)
  assert.equal(await redis.zcard(`${prefix}:{${ns}}:lru`), 3)
  // Forgetting deletes the vector and its place in the index.
  const [gone, kept] = vectorKeys.map((k) => k.slice(k.lastIndexOf(':') + 1))
  assert.equal(await cache.delete(ns, [gone, 'zz']), 1)
  assert.deepEqual(await cache.getMany(ns, [gone, kept], 2), [undefined, v(Number(kept.slice(1)))])
  assert.equal(await redis.zscore(`${prefix}:{${ns}}:lru`, gone), null)
})

test('the Embedder reports hits, misses and evictions (when the write runs), so the hit rate and the bound show in metrics', async (t) => {
  const { redis, prefix } = await redisWithPrefix(t)
  const cache = new RedisEmbeddingCache(redis, { prefix, maxEntries: 2 })
  const embedder = new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 4 }), { cache })
  const events: TelemetryEvent[] = []
  const items = (...texts: string[]) => texts.map((text) => ({ text, contentHash: `h-${text}` }))
  await withTelemetry(
    (e) => events.push(e),
    async () => {
      await embedder.embed(items('one', 'two'))
      await embedder.embed(items('one', 'three')) // "one" from the queue; writes one and two
      await cache.flush() // writes three: the bound evicts one entry
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
    await cache.flush()
    const got = await cache.getMany('openai:m@2', hashes, 2)
    // Bounded at 40: storing 50 at once evicted 10 of them (ties of one batch go in hash order).
    assert.equal(got.filter((v) => v === undefined).length, bounded ? 10 : 0)
    got.forEach((v, i) => assert.ok(v === undefined || v[0] === i))
    if (bounded) await cluster.del(`${prefix}:{openai:m@2}:lru`)
  })
}

// ---- write-behind: the store rides the next lookup's round trip ------------------------------------

type Target = 'redis' | 'cluster'

/** A client of the target, a fresh key prefix, and the prefix's keys deleted (on every node) after the test. */
async function clientFor(t: { after: (fn: () => Promise<void>) => void }, target: Target) {
  const client =
    target === 'redis'
      ? new Redis(endpoints.redisUrl)
      : new Cluster(endpoints.redisClusterNodes.map((n) => ({ host: n.host, port: n.port })))
  const prefix = uniqueName('rs-test-emb')
  t.after(async () => {
    for (const node of client instanceof Cluster ? client.nodes('master') : [client]) {
      const keys = await node.keys(`${prefix}:*`)
      if (keys.length > 0) await node.del(...keys) // one model's keys share a slot
    }
    await client.quit()
  })
  return { client, prefix }
}

/**
 * Round trips the client makes from now on: socket writes of its node connections (ioredis writes
 * a pipeline in one). Call once the connection to the model's node is up.
 */
function countRoundTrips(client: Redis | Cluster): () => number {
  let writes = 0
  for (const node of client instanceof Cluster ? client.nodes('master') : [client]) {
    const stream = node.stream as Socket | undefined
    if (stream === undefined) continue
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean
    stream.write = ((...args: unknown[]) => (writes++, write(...args))) as typeof stream.write
  }
  return () => writes
}

const vec = (x: number) => Float32Array.from([x, -x])
const until = async (what: string, check: () => Promise<boolean>): Promise<void> => {
  for (const started = Date.now(); !(await check());) {
    if (Date.now() - started > 3000) assert.fail(`timed out waiting: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

for (const target of ['redis', 'cluster'] as const)
  for (const bounded of [false, true]) {
    const name = `${target}${bounded ? ', bounded' : ''}`
    const bound = bounded ? { maxEntries: 100, ttlSeconds: 60 } : {}

    test(`${name}: a stored vector is served from the queue, and the queue rides the next lookup (one round trip)`, async (t) => {
      const { client, prefix } = await clientFor(t, target)
      const cache = new RedisEmbeddingCache(client, { prefix, writeDelayMs: 60_000, ...bound })
      const ns = 'hashing:v1@2'
      const key = (hash: string) => `${prefix}:{${ns}}:${hash}`
      assert.deepEqual(await cache.getMany(ns, ['warm'], 2), [undefined]) // connects the model's node
      const roundTrips = countRoundTrips(client)

      await cache.setMany(ns, [
        ['a', vec(1)],
        ['b', vec(2)],
      ])
      assert.equal(roundTrips(), 0, 'a store costs no round trip of its own')
      assert.equal(cache.stats().queued, 2)
      // Asked only for queued vectors: answered here, nothing sent, still queued.
      assert.deepEqual(await cache.getMany(ns, ['b', 'a'], 2), [vec(2), vec(1)])
      assert.deepEqual(await cache.getMany(ns, ['a'], 3), [undefined], 'another size is a miss')
      assert.equal(roundTrips(), 0)
      assert.equal(cache.stats().queued, 2)
      assert.equal(await client.exists(key('a')), 0, 'not written yet')

      // The next lookup that goes to Redis carries the queue: one round trip writes and reads.
      const before = roundTrips()
      assert.deepEqual(await cache.getMany(ns, ['a', 'c'], 2), [vec(1), undefined])
      assert.equal(roundTrips() - before, 1, 'the write rode the lookup')
      assert.deepEqual(cache.stats(), { queued: 0, written: 2, failedWrites: 0, dropped: 0 })
      assert.deepEqual([await client.exists(key('a')), await client.exists(key('b'))], [1, 1])
      if (bounded) assert.equal(await client.zcard(`${prefix}:{${ns}}:lru`), 2)

      // Another process (another cache on the same Redis) sees what was written.
      const other = new RedisEmbeddingCache(client, { prefix, ...bound })
      assert.deepEqual(await other.getMany(ns, ['a', 'b'], 2), [vec(1), vec(2)])
    })

    test(`${name}: the timer writes what no lookup took; close() writes the rest`, async (t) => {
      const { client, prefix } = await clientFor(t, target)
      const ns = 'hashing:v1@2'
      const key = (hash: string) => `${prefix}:{${ns}}:${hash}`
      const timed = new RedisEmbeddingCache(client, { prefix, writeDelayMs: 30, ...bound })
      await timed.getMany(ns, ['warm'], 2)
      const roundTrips = countRoundTrips(client)
      await timed.setMany(ns, [['t', vec(3)]])
      await until('the timer wrote the vector', async () => timed.stats().written === 1)
      assert.equal(roundTrips(), 1, 'one write of its own')
      assert.deepEqual(await new RedisEmbeddingCache(client, { prefix, ...bound }).getMany(ns, ['t'], 2), [vec(3)])

      const closing = new RedisEmbeddingCache(client, { prefix, writeDelayMs: 60_000, ...bound })
      await closing.setMany(ns, [
        ['c1', vec(4)],
        ['c2', vec(5)],
      ])
      await closing.close()
      assert.deepEqual(closing.stats(), { queued: 0, written: 2, failedWrites: 0, dropped: 0 })
      assert.deepEqual([await client.exists(key('c1')), await client.exists(key('c2'))], [1, 1])
      // After close nothing waits: a later store is written at once.
      await closing.setMany(ns, [['late', vec(6)]])
      assert.equal(await client.exists(key('late')), 1)
    })

    test(`${name}: delete drops queued vectors and runs after writes already sent, so forgetting is never undone`, async (t) => {
      const { client, prefix } = await clientFor(t, target)
      const ns = 'hashing:v1@2'
      const key = (hash: string) => `${prefix}:{${ns}}:${hash}`
      const cache = new RedisEmbeddingCache(client, { prefix, writeDelayMs: 20, ...bound })

      // Queued, then deleted: never written, not served, counted as deleted.
      await cache.setMany(ns, [
        ['gone', vec(1)],
        ['kept', vec(2)],
      ])
      assert.equal(await cache.delete(ns, ['gone']), 1)
      assert.deepEqual(await cache.getMany(ns, ['gone'], 2), [undefined])
      await until('the timer wrote the rest', async () => cache.stats().queued === 0 && cache.stats().written === 1)
      await new Promise((resolve) => setTimeout(resolve, 60)) // later timers have nothing to write
      assert.deepEqual([await client.exists(key('gone')), await client.exists(key('kept'))], [0, 1])

      // Sent (riding a lookup still in flight), then deleted: the DEL goes after the write.
      await cache.setMany(ns, [['flying', vec(3)]])
      const lookup = cache.getMany(ns, ['other'], 2) // takes "flying" with it
      assert.equal(await cache.delete(ns, ['flying']), 1)
      await lookup
      await cache.flush()
      assert.equal(await client.exists(key('flying')), 0)
      assert.deepEqual(await cache.getMany(ns, ['flying'], 2), [undefined])
      if (bounded) assert.equal(await client.zscore(`${prefix}:{${ns}}:lru`, 'flying'), null)
    })
  }

test('the delay counts from the oldest vector waiting: a lookup that took the queue restarts it', async (t) => {
  const { client, prefix } = await clientFor(t, 'redis')
  const ns = 'hashing:v1@2'
  const cache = new RedisEmbeddingCache(client, { prefix, writeDelayMs: 1000 })
  await cache.setMany(ns, [['a', vec(1)]])
  await new Promise((resolve) => setTimeout(resolve, 600))
  await cache.getMany(ns, ['x'], 2) // takes "a"
  await cache.setMany(ns, [['b', vec(2)]])
  await new Promise((resolve) => setTimeout(resolve, 600)) // past the first store's second
  assert.deepEqual(cache.stats(), { queued: 1, written: 1, failedWrites: 0, dropped: 0 }, '"b" waits for a lookup')
  await until('the timer wrote "b"', async () => cache.stats().written === 2)
})

test('bounded: evictions are counted when the store script runs, with a lookup or the timer, in the scope that stored', async (t) => {
  const { client, prefix } = await clientFor(t, 'redis')
  const ns = 'hashing:v1@2'
  const cache = new RedisEmbeddingCache(client, { prefix, maxEntries: 3, writeDelayMs: 20 })
  const events: TelemetryEvent[] = []
  await withTelemetry(
    (e) => events.push(e),
    async () => {
      await cache.setMany(ns, [
        ['a', vec(1)],
        ['b', vec(2)],
        ['c', vec(3)],
        ['d', vec(4)],
      ])
      await cache.getMany(ns, ['x'], 2) // the write rides this lookup: 4 stored, 1 evicted
      await cache.setMany(ns, [
        ['e', vec(5)],
        ['f', vec(6)],
      ])
    },
  )
  assert.deepEqual(events, [{ kind: 'embedding-cache-evictions', model: ns, evicted: 1 }])
  // The timer fires outside the scope's await chain but reports into the scope the vectors were stored in.
  await until('the timer wrote', async () => cache.stats().written === 6)
  assert.deepEqual(events, [
    { kind: 'embedding-cache-evictions', model: ns, evicted: 1 },
    { kind: 'embedding-cache-evictions', model: ns, evicted: 2 },
  ])
  assert.equal(await client.zcard(`${prefix}:{${ns}}:lru`), 3)
})

test('a failed write never fails a lookup: it is reported and queued again, and the next round trip writes it', async (t) => {
  const { client, prefix } = await clientFor(t, 'redis')
  const ns = 'hashing:v1@2'
  const cache = new RedisEmbeddingCache(client, { prefix, maxEntries: 10, writeDelayMs: 60_000 })
  // The LRU index of the wrong type: the store script fails (WRONGTYPE), a lookup of misses works.
  await client.set(`${prefix}:{${ns}}:lru`, 'not a sorted set')
  const events: TelemetryEvent[] = []
  await withTelemetry(
    (e) => events.push(e),
    async () => {
      await cache.setMany(ns, [['a', vec(1)]])
      assert.deepEqual(await cache.getMany(ns, ['a', 'b'], 2), [vec(1), undefined])
    },
  )
  assert.deepEqual(events, [{ kind: 'embedding-cache-write-failure', model: ns, vectors: 1 }])
  assert.deepEqual(cache.stats(), { queued: 1, written: 0, failedWrites: 1, dropped: 0 })
  assert.deepEqual(await cache.getMany(ns, ['a'], 2), [vec(1)], 'still served from the queue')
  await assert.rejects(
    cache.flush(),
    (e: unknown) => e instanceof RagstreamError && e.code === 'RS_SERVICE_UNAVAILABLE',
  )

  await client.del(`${prefix}:{${ns}}:lru`)
  assert.deepEqual(await cache.getMany(ns, ['b'], 2), [undefined])
  assert.deepEqual(cache.stats(), { queued: 0, written: 1, failedWrites: 2, dropped: 0 })
  assert.deepEqual(await new RedisEmbeddingCache(client, { prefix, maxEntries: 10 }).getMany(ns, ['a'], 2), [vec(1)])
})

test('the queue is bounded: the oldest vectors are dropped and counted; close drops what it cannot write', async () => {
  const redis = new Redis('redis://127.0.0.1:1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  })
  redis.on('error', () => {})
  const cache = new RedisEmbeddingCache(redis, { maxQueued: 3, writeDelayMs: 60_000, closeTimeoutMs: 500 })
  const events: TelemetryEvent[] = []
  await withTelemetry(
    (e) => events.push(e),
    async () => {
      await cache.setMany('m@2', [
        ['a', vec(1)],
        ['b', vec(2)],
      ])
      await cache.setMany('m@2', [
        ['c', vec(3)],
        ['d', vec(4)],
        ['e', vec(5)],
      ])
      assert.deepEqual(await cache.getMany('m@2', ['c', 'e'], 2), [vec(3), vec(5)])
      // "a" was dropped: its lookup goes to Redis, unreachable; the queue that rode along is kept.
      await assert.rejects(
        cache.getMany('m@2', ['a'], 2),
        (e: unknown) => e instanceof RagstreamError && e.code === 'RS_SERVICE_UNAVAILABLE',
      )
    },
  )
  assert.deepEqual(events, [
    { kind: 'embedding-cache-dropped', model: 'm@2', vectors: 2 },
    { kind: 'embedding-cache-write-failure', model: 'm@2', vectors: 3 },
  ])
  assert.deepEqual(cache.stats(), { queued: 3, written: 0, failedWrites: 1, dropped: 2 })
  await cache.close()
  assert.equal(cache.stats().queued, 0)
  assert.equal(cache.stats().dropped, 5)
  redis.disconnect()
})
