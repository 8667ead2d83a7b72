// Every EmbeddingProvider honours the same contract; one suite runs against each implementation
// (the OpenAI-compatible one against the local fake server).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import { OpenAIProvider } from '../../src/embedding/openai.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import type { EmbeddingProvider } from '../../src/embedding/provider.ts'
import { RagstreamError } from '../../src/errors.ts'
import { startFakeOpenAI } from './fake-openai.ts'

type Factory = (
  t: { after: (fn: () => Promise<void>) => void },
  dimensions: number,
  served?: number,
) => Promise<EmbeddingProvider>

const implementations: Record<string, Factory> = {
  hashing: async (_t, dimensions) => new HashingProvider({ kind: 'hashing', dimensions }),
  openai: async (t, dimensions, served = dimensions) => {
    const fake = await startFakeOpenAI(t, { dimensions: served })
    return new OpenAIProvider(
      { kind: 'openai', model: 'conformance', dimensions, baseUrl: fake.baseUrl, initialBackoffMs: 10 },
      {},
    )
  },
}

for (const [name, create] of Object.entries(implementations)) {
  test(`${name}: one vector per text, in order, of the declared size, deterministic`, async (t) => {
    const provider = await create(t, 24)
    assert.equal(provider.dimensions, 24)
    assert.ok(provider.maxBatchItems >= 1 && provider.maxBatchTokens >= 1 && provider.maxConcurrency >= 1)
    const texts = ['alpha beta', 'gamma', 'alpha beta', '']
    const { vectors } = await provider.embedBatch(texts)
    assert.equal(vectors.length, 4)
    for (const v of vectors) assert.equal(v.length, 24)
    assert.deepEqual(Array.from(vectors[0]), Array.from(vectors[2]))
    assert.notDeepEqual(Array.from(vectors[0]), Array.from(vectors[1]))
    assert.deepEqual(Array.from((await provider.embedBatch(['gamma'])).vectors[0]), Array.from(vectors[1]))
  })

  test(`${name}: Embedder.verify passes with the right size`, async (t) => {
    await new Embedder(await create(t, 24)).verify()
  })
}

test('openai: Embedder.verify fails fast at startup when the service returns another size', async (t) => {
  const embedder = new Embedder(await implementations.openai(t, 24, 12))
  await assert.rejects(
    embedder.verify(),
    (e: unknown) =>
      e instanceof RagstreamError &&
      e.code === 'RS_EMBEDDING_DIMENSIONS' &&
      /returned 12-dimensional vectors, but the topology expects 24/.test(e.message),
  )
})
