// The local provider against the real int8 MiniLM model that `npm run setup` installs: what makes
// it a real model (meaning, not shared words), its limits (tokens), its determinism across workers,
// its cost (CPU time), and how it fails when the model is not there.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Embedder } from '../../src/embedding/embedder.ts'
import { hashingEmbed } from '../../src/embedding/hashing.ts'
import { LocalProvider } from '../../src/embedding/local.ts'
import { LOCAL_MODELS } from '../../src/embedding/models.ts'
import { RagstreamError } from '../../src/errors.ts'

const cosine = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

function localProvider(t: { after: (fn: () => Promise<void>) => void }, workers = 1): LocalProvider {
  const provider = new LocalProvider({ kind: 'local', workers })
  t.after(() => provider.close())
  return provider
}

test('a paraphrase with no word in common is close, an unrelated text is not (hashing sees neither)', async (t) => {
  const texts = [
    'How do I get my money back for a broken item?',
    'I want a refund because the product arrived damaged',
    'The weather in Paris is sunny today',
  ]
  const { vectors } = await localProvider(t).embedBatch(texts)
  const paraphrase = cosine(vectors[0], vectors[1])
  const unrelated = cosine(vectors[0], vectors[2])
  assert.ok(paraphrase > 0.5, `paraphrase cosine ${paraphrase}`)
  assert.ok(paraphrase - unrelated > 0.4, `paraphrase ${paraphrase} vs unrelated ${unrelated}`)
  // The lexical embedder cannot tell them apart: that is the point of a real model.
  const lexical = texts.map((x) => hashingEmbed(x, 384))
  assert.ok(cosine(lexical[0], lexical[1]) < 0.3)
  for (const v of vectors) assert.ok(Math.abs(cosine(v, v) - 1) < 1e-5, 'unit length')
})

test('texts are cut at the model limit (256 tokens), not at the 128 the jar tokenizer.json declares', async (t) => {
  const provider = localProvider(t)
  // One token per word: [CLS] + 320 words + [SEP] before the cut.
  const simple = Array.from({ length: 320 }, (_, i) => ['apple', 'river', 'stone', 'cloud'][i % 4])
  const base = simple.join(' ')
  const changedAt = (i: number): string => simple.map((w, k) => (k === i ? 'volcano' : w)).join(' ')
  const { vectors, tokens } = await provider.embedBatch([base, changedAt(200), changedAt(300)])
  assert.equal(tokens, 3 * LOCAL_MODELS['all-minilm-l6-v2-int8'].maxTokens)
  assert.ok(cosine(vectors[0], vectors[1]) < 0.99999, 'a change at token ~200 must change the vector')
  assert.deepEqual(Array.from(vectors[2]), Array.from(vectors[0]), 'a change past token 256 is cut off')
})

test('two workers give the same vectors as one, and report tokens and CPU time', async (t) => {
  const texts = Array.from({ length: 12 }, (_, i) => `ticket ${i}: the ${['app', 'invoice', 'login'][i % 3]} fails`)
  const one = await localProvider(t, 1).embedBatch(texts)
  const two = await localProvider(t, 2).embedBatch(texts)
  for (let i = 0; i < texts.length; i++) assert.deepEqual(Array.from(two.vectors[i]), Array.from(one.vectors[i]))
  assert.ok(one.tokens !== undefined && one.tokens >= texts.length * 8)
  assert.ok((one.cpuMs ?? 0) > 0 && (two.cpuMs ?? 0) > 0)
  const embedder = new Embedder(localProvider(t))
  await embedder.embed(texts.map((text, i) => ({ text, contentHash: `h${i}` })))
  assert.ok(embedder.metrics().cpuMs > 0)
  assert.equal(embedder.model, 'local:all-minilm-l6-v2-int8@384')
})

test('a missing or altered model fails with RS_EMBEDDING_MODEL_MISSING and the command that installs it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ragstream-models-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const missing = new LocalProvider({ kind: 'local' }, { RAGSTREAM_MODELS_DIR: dir })
  t.after(() => missing.close())
  const isMissing = (e: unknown): boolean =>
    e instanceof RagstreamError &&
    e.code === 'RS_EMBEDDING_MODEL_MISSING' &&
    !e.retriable &&
    /all-minilm-l6-v2-int8/.test(e.message) &&
    /npm run setup/.test(e.hint ?? '')
  await assert.rejects(missing.embedBatch(['x']), isMissing)
  const spec = LOCAL_MODELS['all-minilm-l6-v2-int8']
  mkdirSync(join(dir, spec.id))
  writeFileSync(join(dir, spec.id, spec.onnx.name), 'not a model')
  writeFileSync(join(dir, spec.id, spec.tokenizer.name), '{}')
  const altered = new LocalProvider({ kind: 'local' }, { RAGSTREAM_MODELS_DIR: dir })
  t.after(() => altered.close())
  await assert.rejects(altered.embedBatch(['x']), (e: unknown) => isMissing(e) && /sha256/.test((e as Error).message))
})
