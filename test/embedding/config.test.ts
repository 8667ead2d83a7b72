import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  createEmbeddingProvider,
  defaultLocalOrHashing,
  parseModelId,
  providerForModel,
  validateEmbeddingConfig,
  type EmbeddingConfig,
} from '../../src/embedding/config.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import { LocalProvider } from '../../src/embedding/local.ts'
import { vectorFromField } from '../../src/embedding/precomputed.ts'
import { ConfigError, RagstreamError } from '../../src/errors.ts'
import { startFakeOpenAI } from './fake-openai.ts'

test('embedding config validation lists every problem with its path', () => {
  const bad = {
    kind: 'openai',
    model: '',
    dimensions: 0,
    baseUrl: 'https://user:secret@api.example/v1',
    apiKeyEnv: 'sk-live-123',
    maxRetries: -1,
  } as unknown as EmbeddingConfig
  assert.deepEqual(
    validateEmbeddingConfig(bad, '/topology/embedding').map((p) => p.path),
    [
      '/topology/embedding/model',
      '/topology/embedding/dimensions',
      '/topology/embedding/baseUrl',
      '/topology/embedding/apiKeyEnv',
      '/topology/embedding/maxRetries',
    ],
  )
  assert.deepEqual(validateEmbeddingConfig({ kind: 'nope' } as unknown as EmbeddingConfig, '/e'), [
    { path: '/e/kind', message: 'must be one of hashing, local, openai, precomputed' },
  ])
  assert.deepEqual(validateEmbeddingConfig({ kind: 'precomputed', field: 'vec', dimensions: 3 }), [])
  assert.throws(() => createEmbeddingProvider({ kind: 'hashing', dimensions: 20_000 }), ConfigError)
  assert.equal(createEmbeddingProvider({ kind: 'hashing' }).dimensions, 384)
  assert.equal(createEmbeddingProvider({ kind: 'openai', model: 'm', dimensions: 3 }, {}).model, 'openai:m')
})

test('bring your own vectors: arrays, pgvector literals and float32 bytes; bad ones are RS_RECORD_INVALID', () => {
  const config = { kind: 'precomputed', field: 'meta.vec', dimensions: 3 } as const
  assert.deepEqual(Array.from(vectorFromField({ meta: { vec: [1, 0.5, 0] } }, config)), [1, 0.5, 0])
  assert.deepEqual(Array.from(vectorFromField({ meta: { vec: '[1,2,3]' } }, config)), [1, 2, 3])
  const bytes = Buffer.from(Float32Array.from([1, 2, 3]).buffer)
  assert.deepEqual(Array.from(vectorFromField({ meta: { vec: bytes } }, config)), [1, 2, 3])
  for (const [row, reason] of [
    [{}, /is missing/],
    [{ meta: { vec: [1, 2] } }, /has 2 dimensions, the topology expects 3/],
    [{ meta: { vec: [1, 2, null] } }, /non-finite value at index 2/],
    [{ meta: { vec: 7 } }, /is not a vector/],
  ] as const) {
    assert.throws(
      () => vectorFromField(row, config, { topic: 't', partition: 0, offset: 5n }),
      (e: unknown) =>
        e instanceof RagstreamError &&
        e.code === 'RS_RECORD_INVALID' &&
        reason.test(e.message) &&
        e.context.offset === 5n,
    )
  }
})

test('local config: a model of the pinned table, its own dimensions, workers within the machine', () => {
  assert.deepEqual(validateEmbeddingConfig({ kind: 'local' }), [])
  assert.deepEqual(
    validateEmbeddingConfig({ kind: 'local', model: 'e5-small-v2-int8', dimensions: 384, workers: 1 }),
    [],
  )
  const bad = { kind: 'local', model: 'gpt-9', workers: 0, input: 'question' } as unknown as EmbeddingConfig
  assert.deepEqual(
    validateEmbeddingConfig(bad, '/embedding').map((p) => p.path),
    ['/embedding/model', '/embedding/workers', '/embedding/input'],
  )
  assert.match(
    validateEmbeddingConfig({ kind: 'local', dimensions: 768 }, '/embedding')[0].message,
    /all-minilm-l6-v2-int8 embeds into 384 dimensions/,
  )
  const provider = createEmbeddingProvider({ kind: 'local' })
  assert.ok(provider instanceof LocalProvider)
  assert.equal(`${provider.model}@${provider.dimensions}`, 'local:all-minilm-l6-v2-int8@384')
})

test('providerForModel: the id an Embedder records on rows gives back a provider of the same space', async (t) => {
  const fake = await startFakeOpenAI(t, { dimensions: 8 })
  const env = { ...process.env, RAGSTREAM_EMBEDDING_URL: fake.baseUrl }
  // The ids exactly as rows record them: Embedder.model of each provider.
  const recorded = [
    new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 384 })).model,
    new Embedder(createEmbeddingProvider({ kind: 'local' })).model,
    new Embedder(createEmbeddingProvider({ kind: 'openai', model: 'text-embedding-3-small', dimensions: 8 }, {})).model,
  ]
  assert.deepEqual(recorded, ['hashing:v1@384', 'local:all-minilm-l6-v2-int8@384', 'openai:text-embedding-3-small@8'])
  for (const id of recorded) {
    const provider = providerForModel(id, env)
    t.after(async () => provider.close?.())
    assert.equal(`${provider.model}@${provider.dimensions}`, id)
    const { vectors } = await provider.embedBatch(['refund for a damaged parcel'])
    assert.equal(vectors[0].length, parseModelId(id)?.dimensions)
  }
  // The query embeds like the rows: hashing bit for bit, the local model as its query input.
  const hashed = (await providerForModel('hashing:v1@384').embedBatch(['refund'])).vectors[0]
  assert.deepEqual(Array.from(hashed), Array.from((await new HashingProvider().embedBatch(['refund'])).vectors[0]))
  const query = providerForModel('local:all-minilm-l6-v2-int8@384')
  t.after(async () => query.close?.())
  const passage = new LocalProvider({ kind: 'local' })
  t.after(() => passage.close())
  // MiniLM has no query prefix, so a query and a passage of the same text are the same vector.
  assert.deepEqual(
    Array.from((await query.embedBatch(['refund'])).vectors[0]),
    Array.from((await passage.embedBatch(['refund'])).vectors[0]),
  )
  assert.equal(fake.requests.at(-1)?.model, 'text-embedding-3-small')
})

test('providerForModel refuses ids no provider here can embed like, naming the id', () => {
  for (const [id, reason] of [
    ['hashing:v2@384', /hashing:v1 only/],
    ['precomputed:embedding@768', /no provider of kind precomputed/],
    ['local:gpt-9@384', /no local model gpt-9/],
    ['local:all-minilm-l6-v2-int8@768', /embeds into 384 dimensions, not 768/],
    ['hashing:v1', /expected <kind>:<model>@<dimensions>/],
  ] as const) {
    assert.throws(
      () => providerForModel(id),
      (e: unknown) =>
        e instanceof ConfigError && e.message.includes(JSON.stringify(id)) && reason.test(e.message) && !!e.hint,
      id,
    )
  }
  assert.deepEqual(parseModelId('openai:org/model:v2@1536'), {
    kind: 'openai',
    model: 'org/model:v2',
    dimensions: 1536,
  })
})

test('the demo default: the local model when installed, else hashing with the reason', () => {
  const installed = defaultLocalOrHashing()
  assert.deepEqual(installed, { config: { kind: 'local', model: 'all-minilm-l6-v2-int8' } })
  const absent = defaultLocalOrHashing({ RAGSTREAM_MODELS_DIR: '/nonexistent/ragstream-models' })
  assert.deepEqual(absent.config, { kind: 'hashing', dimensions: 384 })
  assert.match(absent.fallback ?? '', /not installed \(npm run setup installs it\)/)
})
