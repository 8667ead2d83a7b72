import { test } from 'node:test'
import assert from 'node:assert/strict'
import { HashingProvider, hashingEmbed } from '../../src/embedding/hashing.ts'

const cosine = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0)

test('hashing embeddings are deterministic, L2-normalised and of the configured size', async () => {
  const a = hashingEmbed('Refund the duplicate invoice for order 42', 384)
  assert.equal(a.length, 384)
  assert.deepEqual(hashingEmbed('Refund the duplicate invoice for order 42', 384), a)
  assert.ok(Math.abs(cosine(a, a) - 1) < 1e-6)
  const provider = new HashingProvider({ kind: 'hashing', dimensions: 64 })
  assert.equal(provider.model, 'hashing:v1')
  const { vectors } = await provider.embedBatch(['x y', 'z'])
  assert.deepEqual(
    vectors.map((v) => v.length),
    [64, 64],
  )
  assert.equal(new HashingProvider().dimensions, 384)
})

test('lexical, not semantic: shared words score high, synonyms do not', () => {
  const q = hashingEmbed('refund duplicate invoice', 384)
  const sameWords = hashingEmbed('Please refund the duplicate invoice', 384)
  const synonyms = hashingEmbed('money back for a double bill', 384)
  assert.ok(cosine(q, sameWords) > 0.5)
  assert.ok(Math.abs(cosine(q, synonyms)) < 0.2)
  assert.deepEqual(hashingEmbed('Invoice, REFUND!', 32), hashingEmbed('invoice refund', 32))
})

test('text without words maps to a unit vector, never the zero vector', () => {
  const v = hashingEmbed(' ... ', 8)
  assert.deepEqual(Array.from(v), [1, 0, 0, 0, 0, 0, 0, 0])
})
