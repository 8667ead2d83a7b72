import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createEmbeddingProvider, validateEmbeddingConfig, type EmbeddingConfig } from '../../src/embedding/config.ts'
import { vectorFromField } from '../../src/embedding/precomputed.ts'
import { ConfigError, RagstreamError } from '../../src/errors.ts'

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
    { path: '/e/kind', message: 'must be one of hashing, openai, precomputed' },
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
