import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { Embedder } from '../../src/embedding/embedder.ts'
import { OpenAIProvider, retryAfterMs, type OpenAIEmbeddingConfig } from '../../src/embedding/openai.ts'
import { RedisEmbeddingCache } from '../../src/embedding/cache.ts'
import { hashingEmbed } from '../../src/embedding/hashing.ts'
import { contentHash } from '../../src/chunking/chunk-id.ts'
import { approxTokens } from '../../src/chunking/size.ts'
import { RagstreamError } from '../../src/errors.ts'
import { endpoints, uniqueName } from '../support/stack.ts'
import { startFakeOpenAI } from './fake-openai.ts'

const KEY = 'sk-test-0123456789abcdef'
const env = { TEST_EMBEDDINGS_KEY: KEY }
const items = (n: number, prefix = 'chunk') =>
  Array.from({ length: n }, (_, i) => {
    const text = `${prefix} ${i}: ${'words about invoices '.repeat(1 + (i % 5))}`
    return { text, contentHash: contentHash(text) }
  })
const config = (baseUrl: string, extra: Partial<OpenAIEmbeddingConfig> = {}): OpenAIEmbeddingConfig => ({
  kind: 'openai',
  model: 'text-embedding-test',
  dimensions: 16,
  baseUrl,
  apiKeyEnv: 'TEST_EMBEDDINGS_KEY',
  initialBackoffMs: 10,
  ...extra,
})

test('batches respect the item and token limits and the concurrency limit; vectors come back in input order', async (t) => {
  const fake = await startFakeOpenAI(t, { dimensions: 16, latencyMs: 30 })
  const input = items(23)
  const maxBatchTokens = 40
  const embedder = new Embedder(
    new OpenAIProvider(config(fake.baseUrl, { maxBatchItems: 4, maxBatchTokens, maxConcurrency: 2 }), env),
  )
  const vectors = await embedder.embed(input)
  assert.equal(vectors.length, 23)
  vectors.forEach((v, i) => assert.deepEqual(v, Float32Array.from(hashingEmbed(input[i].text, 16))))
  assert.ok(fake.requests.length >= 6)
  for (const r of fake.requests) {
    assert.ok(r.input.length <= 4, `batch of ${r.input.length} items`)
    const tokens = r.input.reduce((s, x) => s + approxTokens(x), 0)
    assert.ok(tokens <= maxBatchTokens || r.input.length === 1, `batch of ${tokens} tokens`)
    assert.equal(r.model, 'text-embedding-test')
    assert.equal(r.headers.authorization, `Bearer ${KEY}`)
  }
  assert.equal(fake.requests.flatMap((r) => r.input).length, 23)
  assert.ok(fake.maxInFlight <= 2, `max in flight ${fake.maxInFlight}`)
  const m = embedder.metrics()
  assert.equal(m.calls, fake.requests.length)
  assert.equal(m.items, 23)
  assert.equal(m.tokens, 23 * 3) // billed tokens from `usage`
  assert.ok(m.latencyMsTotal > 0 && m.latencyMsMax >= 30)
})

test('the concurrency limit holds across concurrent embed() calls sharing one Embedder', async (t) => {
  const fake = await startFakeOpenAI(t, { dimensions: 16, latencyMs: 40 })
  const embedder = new Embedder(new OpenAIProvider(config(fake.baseUrl, { maxBatchItems: 2, maxConcurrency: 2 }), env))
  await Promise.all([embedder.embed(items(6, 'a')), embedder.embed(items(6, 'b')), embedder.embed(items(6, 'c'))])
  assert.equal(fake.requests.length, 9)
  assert.ok(fake.maxInFlight <= 2, `max in flight ${fake.maxInFlight}`)
})

test('duplicate texts in one batch are embedded once', async (t) => {
  const fake = await startFakeOpenAI(t, { dimensions: 16 })
  const [a, b] = items(2)
  const vectors = await new Embedder(new OpenAIProvider(config(fake.baseUrl), env)).embed([a, b, a, a])
  assert.deepEqual(
    fake.requests.map((r) => r.input.length),
    [2],
  )
  assert.deepEqual(vectors[3], vectors[0])
})

test('429 with Retry-After is retried after the requested wait', async (t) => {
  const fake = await startFakeOpenAI(t, {
    dimensions: 16,
    intercept: (_, n, res) => {
      if (n > 1) return false
      res
        .writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' })
        .end('{"error":{"message":"Rate limit reached"}}')
      return true
    },
  })
  const embedder = new Embedder(new OpenAIProvider(config(fake.baseUrl), env))
  const vectors = await embedder.embed(items(3))
  assert.equal(vectors.length, 3)
  assert.equal(fake.requests.length, 2)
  assert.ok(
    fake.requests[1].at - fake.requests[0].at >= 950,
    `retried after ${fake.requests[1].at - fake.requests[0].at} ms`,
  )
  assert.equal(embedder.metrics().retries, 1)
})

test('5xx and timeouts are retried; when attempts run out the error is RS_EMBEDDING_FAILED and retriable', async (t) => {
  const flaky = await startFakeOpenAI(t, {
    dimensions: 16,
    intercept: async (_, n, res) => {
      if (n === 1) {
        res.writeHead(503).end('upstream overloaded')
        return true
      }
      if (n === 2) {
        await new Promise((r) => setTimeout(r, 400)) // longer than the 150 ms timeout
        res.writeHead(500).end()
        return true
      }
      return false
    },
  })
  assert.equal(
    (await new Embedder(new OpenAIProvider(config(flaky.baseUrl, { timeoutMs: 150 }), env)).embed(items(2))).length,
    2,
  )
  assert.equal(flaky.requests.length, 3)

  const down = await startFakeOpenAI(t, {
    dimensions: 16,
    intercept: (_, __, res) => {
      res.writeHead(502).end()
      return true
    },
  })
  await assert.rejects(
    new Embedder(new OpenAIProvider(config(down.baseUrl, { maxRetries: 2 }), env)).embed(items(1)),
    (e: unknown) => {
      assert.ok(e instanceof RagstreamError)
      assert.equal(e.code, 'RS_EMBEDDING_FAILED')
      assert.equal(e.retriable, true)
      assert.match(e.message, /after 3 attempts: HTTP 502/)
      return true
    },
  )
  assert.equal(down.requests.length, 3)
})

test('a dimension mismatch is RS_EMBEDDING_DIMENSIONS naming the model and both sizes', async (t) => {
  const fake = await startFakeOpenAI(t, { dimensions: 8 })
  await assert.rejects(
    new Embedder(new OpenAIProvider(config(fake.baseUrl, { dimensions: 16 }), env)).embed(items(2)),
    (e: unknown) => {
      assert.ok(e instanceof RagstreamError)
      assert.equal(e.code, 'RS_EMBEDDING_DIMENSIONS')
      assert.equal(
        e.message,
        'embedding model openai:text-embedding-test returned 8-dimensional vectors, but the topology expects 16 dimensions',
      )
      assert.deepEqual([e.context.expected, e.context.actual], [16, 8])
      return true
    },
  )
})

test('a rejected key is RS_EMBEDDING_REJECTED, not retried, and the key never appears in the error', async (t) => {
  const fake = await startFakeOpenAI(t, {
    dimensions: 16,
    intercept: (r, _, res) => {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { message: `Incorrect API key provided: ${String(r.headers.authorization)}` } }))
      return true
    },
  })
  await assert.rejects(new Embedder(new OpenAIProvider(config(fake.baseUrl), env)).embed(items(1)), (e: unknown) => {
    assert.ok(e instanceof RagstreamError)
    assert.equal(e.code, 'RS_EMBEDDING_REJECTED')
    assert.equal(e.retriable, false)
    const everything = `${e.message} ${e.hint} ${JSON.stringify(e.context)} ${e.stack}`
    assert.ok(!everything.includes(KEY), 'the API key leaked into the error')
    assert.match(e.message, /HTTP 401/)
    assert.match(e.hint ?? '', /\$TEST_EMBEDDINGS_KEY/)
    return true
  })
  assert.equal(fake.requests.length, 1)
})

test('Azure-style base URLs keep their query string and use the api-key header', async (t) => {
  const fake = await startFakeOpenAI(t, { dimensions: 16 })
  const provider = new OpenAIProvider(config(`${fake.baseUrl}?api-version=2024-02-01`, { authHeader: 'api-key' }), env)
  assert.equal((await provider.embedBatch(['x'])).vectors.length, 1)
  assert.equal(fake.requests[0].url, '/v1/embeddings?api-version=2024-02-01')
  assert.equal(fake.requests[0].headers['api-key'], KEY)
  assert.equal(fake.requests[0].headers.authorization, undefined)
})

test('a replay of the same input makes 0 embedding calls (Redis cache keyed by model and content hash)', async (t) => {
  const fake = await startFakeOpenAI(t, { dimensions: 16 })
  const redis = new Redis(endpoints.redisUrl)
  const prefix = uniqueName('rs-test-emb')
  t.after(async () => {
    const keys = await redis.keys(`${prefix}:*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })
  const input = items(10)
  const firstCache = new RedisEmbeddingCache(redis, { prefix })
  const first = new Embedder(new OpenAIProvider(config(fake.baseUrl, { maxBatchItems: 4 }), env), {
    cache: firstCache,
  })
  const vectors = await first.embed(input)
  const callsAfterFirstRun = fake.requests.length
  assert.equal(callsAfterFirstRun, 3)

  // Same process, same input: all hits.
  assert.deepEqual(await first.embed(input), vectors)
  // A restarted worker replaying from earliest: a fresh Embedder, same Redis (the first one closed,
  // which wrote its queued vectors).
  await firstCache.close()
  const replay = new Embedder(new OpenAIProvider(config(fake.baseUrl, { maxBatchItems: 4 }), env), {
    cache: new RedisEmbeddingCache(redis, { prefix }),
  })
  assert.deepEqual(await replay.embed([...input].reverse()), [...vectors].reverse())
  assert.equal(fake.requests.length, callsAfterFirstRun, 'the replay called the embedding service')
  assert.deepEqual(replay.metrics(), { ...replay.metrics(), calls: 0, items: 0, cacheHits: 10, cacheMisses: 0 })

  // One edited chunk: exactly one item embedded.
  const edited = [...input.slice(0, 9), ...items(1, 'edited')]
  await replay.embed(edited)
  assert.equal(fake.requests.length, callsAfterFirstRun + 1)
  assert.deepEqual(fake.requests.at(-1)?.input, [edited[9].text])

  // Another model (or dimension setting) never sees these vectors.
  assert.equal(
    (await new RedisEmbeddingCache(redis, { prefix }).getMany('openai:other@16', [input[0].contentHash], 16))[0],
    undefined,
  )
})

test('Retry-After parsing: seconds, HTTP date, retry-after-ms, capped', () => {
  assert.equal(retryAfterMs(new Headers({ 'retry-after': '2' }), 60_000), 2000)
  assert.equal(retryAfterMs(new Headers({ 'retry-after-ms': '250', 'retry-after': '9' }), 60_000), 250)
  assert.equal(retryAfterMs(new Headers({ 'retry-after': '3600' }), 60_000), 60_000)
  const soon = retryAfterMs(new Headers({ 'retry-after': new Date(Date.now() + 5000).toUTCString() }), 60_000) as number
  assert.ok(soon > 3000 && soon <= 5000)
  assert.equal(retryAfterMs(new Headers(), 60_000), undefined)
})
