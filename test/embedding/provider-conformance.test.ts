// Every EmbeddingProvider honours the same contract; one suite runs against each implementation
// (the OpenAI-compatible one against the local fake server, the local one against the real model
// that `npm run setup` installs).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import { LocalProvider } from '../../src/embedding/local.ts'
import { OpenAIProvider } from '../../src/embedding/openai.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import type { EmbeddingProvider } from '../../src/embedding/provider.ts'
import { RagstreamError } from '../../src/errors.ts'
import { startFakeOpenAI } from './fake-openai.ts'

type Factory = (t: { after: (fn: () => Promise<void>) => void }, served?: number) => Promise<EmbeddingProvider>

/** Each implementation at the size it embeds into (the local model's is fixed by the model). */
const implementations: Record<string, { dimensions: number; create: Factory }> = {
  hashing: { dimensions: 24, create: async () => new HashingProvider({ kind: 'hashing', dimensions: 24 }) },
  openai: {
    dimensions: 24,
    create: async (t, served = 24) => {
      const fake = await startFakeOpenAI(t, { dimensions: served })
      return new OpenAIProvider(
        { kind: 'openai', model: 'conformance', dimensions: 24, baseUrl: fake.baseUrl, initialBackoffMs: 10 },
        {},
      )
    },
  },
  local: {
    dimensions: 384,
    create: async (t) => {
      const provider = new LocalProvider({ kind: 'local', workers: 2 })
      t.after(() => provider.close())
      return provider
    },
  },
}

const sameVector = (a: ArrayLike<number>, b: ArrayLike<number>): boolean =>
  a.length === b.length && Array.from(a).every((x, i) => Object.is(x, b[i]))

for (const [name, { dimensions, create }] of Object.entries(implementations)) {
  test(`${name}: one vector per text, in order, of the declared size, deterministic`, async (t) => {
    const provider = await create(t)
    assert.equal(provider.dimensions, dimensions)
    assert.ok(provider.maxBatchItems >= 1 && provider.maxBatchTokens >= 1 && provider.maxConcurrency >= 1)
    const texts = ['alpha beta', 'gamma', 'alpha beta', '']
    const { vectors } = await provider.embedBatch(texts)
    assert.equal(vectors.length, 4)
    for (const v of vectors) assert.equal(v.length, dimensions)
    assert.ok(sameVector(vectors[0], vectors[2]))
    assert.ok(!sameVector(vectors[0], vectors[1]))
    // The same text alone, or among other texts, gives the same vector bit for bit.
    assert.ok(sameVector((await provider.embedBatch(['gamma'])).vectors[0], vectors[1]))
    const crowd = await provider.embedBatch(['a much longer text about something else entirely', 'gamma', 'x'])
    assert.ok(sameVector(crowd.vectors[1], vectors[1]))
  })

  test(`${name}: Embedder.verify passes with the right size`, async (t) => {
    await new Embedder(await create(t)).verify()
  })
}

test('openai: Embedder.verify fails fast at startup when the service returns another size', async (t) => {
  const embedder = new Embedder(await implementations.openai.create(t, 12))
  await assert.rejects(
    embedder.verify(),
    (e: unknown) =>
      e instanceof RagstreamError &&
      e.code === 'RS_EMBEDDING_DIMENSIONS' &&
      /returned 12-dimensional vectors, but the topology expects 24/.test(e.message),
  )
})
