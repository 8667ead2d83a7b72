import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EmbeddingBudget } from '../../src/embedding/budget.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import { contentHash } from '../../src/chunking/chunk-id.ts'

const item = (text: string) => ({ text, contentHash: contentHash(text) })

test("the budget throttles once a minute's items are spent, and never refuses", async () => {
  const budget = new EmbeddingBudget({ maxItemsPerMinute: 120 }) // 2 per second
  assert.equal(await budget.acquire(120, 0), 0)
  const started = performance.now()
  await budget.acquire(2, 0)
  const waited = performance.now() - started
  assert.ok(waited >= 900 && waited < 3000, `waited ${waited} ms`)
  assert.ok(budget.throttledMs >= 900)
})

test("a request larger than a minute's token budget runs at once and the debt slows the next one", async () => {
  const budget = new EmbeddingBudget({ maxTokensPerMinute: 6000 }) // 100 per second
  const started = performance.now()
  await budget.acquire(1, 6100)
  assert.ok(performance.now() - started < 100)
  await budget.acquire(1, 50) // 100 tokens of debt + 50 → about 1.5 s
  const waited = performance.now() - started
  assert.ok(waited >= 1400 && waited < 4000, `waited ${waited} ms`)
})

test('concurrent callers queue in order; the Embedder reports the time spent throttled', async () => {
  const embedder = new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 8 }), {
    budget: new EmbeddingBudget({ maxItemsPerMinute: 60 }),
  })
  await embedder.embed(Array.from({ length: 60 }, (_, i) => item(`text ${i}`)))
  const [a, b] = await Promise.all([embedder.embed([item('late one')]), embedder.embed([item('late two')])])
  assert.equal(a.length + b.length, 2)
  const m = embedder.metrics()
  assert.equal(m.items, 62)
  assert.ok(m.throttledMs >= 1900, `throttled ${m.throttledMs} ms`)
})
