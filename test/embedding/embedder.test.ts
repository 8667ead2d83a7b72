// The Embedder's counters and telemetry: each successful call, failed call (with the retries it made),
// cache lookup and budget wait is counted in metrics() and reported to the telemetry scope it runs in,
// against a fake OpenAI-compatible server (node:http) that fails on cue.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { contentHash } from '../../src/chunking/chunk-id.ts'
import { EmbeddingBudget } from '../../src/embedding/budget.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import { OpenAIProvider, type OpenAIEmbeddingConfig } from '../../src/embedding/openai.ts'
import { Redis } from 'ioredis'
import { RedisEmbeddingCache } from '../../src/embedding/cache.ts'
import { type RagstreamError } from '../../src/errors.ts'
import { withTelemetry, type TelemetryEvent } from '../../src/observability/telemetry.ts'
import { endpoints, uniqueName } from '../support/stack.ts'
import { startFakeOpenAI } from './fake-openai.ts'

const item = (text: string) => ({ text, contentHash: contentHash(text) })
const config = (baseUrl: string, extra: Partial<OpenAIEmbeddingConfig> = {}): OpenAIEmbeddingConfig => ({
  kind: 'openai',
  model: 'm',
  dimensions: 8,
  baseUrl,
  apiKeyEnv: 'NO_KEY_NEEDED',
  initialBackoffMs: 1,
  maxBackoffMs: 5,
  ...extra,
})

test('a call that needed retries: counted once with its retries, tokens and latency, and reported to the scope', async (t) => {
  const fake = await startFakeOpenAI(t, {
    dimensions: 8,
    intercept: (_request, n, res) => {
      if (n > 2) return false
      res.writeHead(503).end('busy')
      return true
    },
  })
  const embedder = new Embedder(new OpenAIProvider(config(fake.baseUrl), {}))
  const events: TelemetryEvent[] = []
  await withTelemetry(
    (e) => events.push(e),
    () => embedder.embed([item('a'), item('b'), item('a')]),
  )
  const m = embedder.metrics()
  assert.deepEqual([m.calls, m.items, m.tokens, m.retries, m.failures], [1, 2, 6, 2, {}])
  assert.deepEqual(
    events.map((e) => e.kind),
    ['embedding-cache', 'embedding-call'],
  )
  assert.deepEqual(events[0], { kind: 'embedding-cache', model: 'openai:m@8', hits: 0, misses: 2 })
  const call = events[1] as Extract<TelemetryEvent, { kind: 'embedding-call' }>
  assert.deepEqual(
    { ...call, latencyMs: 0 },
    { kind: 'embedding-call', model: 'openai:m@8', items: 2, tokens: 6, retries: 2, latencyMs: 0, cpuMs: 0 },
  )
  assert.ok(call.latencyMs > 0)
})

test('failed calls are counted by error code with the retries they made; outside a scope nothing is reported', async (t) => {
  let status = 500
  const fake = await startFakeOpenAI(t, {
    dimensions: 8,
    intercept: (_request, _n, res) => {
      res.writeHead(status).end('no')
      return true
    },
  })
  const embedder = new Embedder(new OpenAIProvider(config(fake.baseUrl, { maxRetries: 2 }), {}))
  const events: TelemetryEvent[] = []
  await assert.rejects(
    withTelemetry(
      (e) => events.push(e),
      () => embedder.embed([item('x')]),
    ),
    (e: RagstreamError) => e.code === 'RS_EMBEDDING_FAILED' && e.context.attempts === 3 && e.hint !== undefined,
  )
  status = 400
  await assert.rejects(
    withTelemetry(
      (e) => events.push(e),
      () => embedder.embed([item('x')]),
    ),
    (e: RagstreamError) => e.code === 'RS_EMBEDDING_REJECTED',
  )
  await assert.rejects(embedder.embed([item('x')]), (e: RagstreamError) => e.code === 'RS_EMBEDDING_REJECTED')
  const failures = events.filter((e) => e.kind === 'embedding-failure').map((e) => ({ ...e, latencyMs: 0 }))
  assert.deepEqual(failures, [
    { kind: 'embedding-failure', model: 'openai:m@8', code: 'RS_EMBEDDING_FAILED', retries: 2, latencyMs: 0 },
    { kind: 'embedding-failure', model: 'openai:m@8', code: 'RS_EMBEDDING_REJECTED', retries: 0, latencyMs: 0 },
  ])
  const m = embedder.metrics()
  assert.deepEqual([m.calls, m.retries, m.failures], [0, 2, { RS_EMBEDDING_FAILED: 1, RS_EMBEDDING_REJECTED: 2 }])
})

test('wrong vector sizes count as an RS_EMBEDDING_DIMENSIONS failure; cache hits and budget waits are reported', async (t) => {
  const fake = await startFakeOpenAI(t, { dimensions: 4 })
  const wrong = new Embedder(new OpenAIProvider(config(fake.baseUrl), {}))
  await assert.rejects(wrong.embed([item('x')]), (e: RagstreamError) => e.code === 'RS_EMBEDDING_DIMENSIONS')
  assert.deepEqual(wrong.metrics().failures, { RS_EMBEDDING_DIMENSIONS: 1 })

  const redis = new Redis(endpoints.redisUrl)
  const prefix = uniqueName('rs-test-emb')
  t.after(async () => {
    const keys = await redis.keys(`${prefix}:*`)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })
  // One item every 3 s once the first 20 are spent: far slower than anything between the two calls,
  // however busy the machine.
  const budget = new EmbeddingBudget({ maxItemsPerMinute: 20 })
  const embedder = new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 8 }), {
    cache: new RedisEmbeddingCache(redis, { prefix }),
    budget,
  })
  const events: TelemetryEvent[] = []
  const started = performance.now()
  await withTelemetry(
    (e) => events.push(e),
    async () => {
      await embedder.embed(Array.from({ length: 20 }, (_, i) => item(`text ${i}`)))
      await embedder.embed([item('text 0'), item('text 1'), item('new')])
    },
  )
  const elapsed = performance.now() - started
  assert.deepEqual(
    events.filter((e) => e.kind === 'embedding-cache').map((e) => [e.hits, e.misses]),
    [
      [0, 20],
      [2, 1],
    ],
  )
  const throttled = events.filter((e) => e.kind === 'embedding-throttled')
  assert.equal(throttled.length, 1, 'the second call waited for the budget')
  // The bucket was empty after the first call and refills one item per 3 s: the second call waited
  // for it, and however long the calls themselves took, both could not end sooner.
  assert.ok(throttled[0].ms >= 1500 && elapsed >= 2950, `waited ${throttled[0].ms} ms, both calls took ${elapsed} ms`)
  assert.equal(throttled[0].ms, embedder.metrics().throttledMs)
})
