import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { canonicalJson } from '../../src/cdc/keys.ts'
import { chunkFingerprint, chunkId, contentHash } from '../../src/chunking/chunk-id.ts'

// The digests as first written (a Hash object per call): ids, hashes and fingerprints are stored and
// compared across versions, so the one-shot digests must give exactly these.
const reference = {
  chunkId: (topology: string, type: string, key: string, index: number) =>
    createHash('sha256').update(`${topology}\0${type}\0${key}\0${index}`).digest('hex').slice(0, 32),
  contentHash: (text: string) => createHash('sha256').update(text).digest('hex'),
  fingerprint: (hash: string, attributes: unknown) =>
    createHash('sha256')
      .update(hash)
      .update('\0')
      .update(canonicalJson(attributes ?? null))
      .digest()
      .subarray(0, 16)
      .toString('base64url'),
}

const texts = ['', 'Ticket 42\nThe export stops.', 'Zoë’s café — 東京 🚀', 'a\u0000b', 'x'.repeat(10_000)]

test('chunk ids, content hashes and fingerprints are the sha256 digests they always were', () => {
  for (const text of texts) {
    assert.equal(chunkId('support', 'ticket', text, 3), reference.chunkId('support', 'ticket', text, 3))
    assert.equal(contentHash(text), reference.contentHash(text))
    for (const attributes of [
      null,
      undefined,
      { metadata: '{"title":"Zoë"}', classification: 'internal', subjects: ['customer:42'], model: 'hashing:v1@384' },
      { b: 1, a: [text, { d: null, c: '🚀' }] },
    ])
      assert.equal(
        chunkFingerprint(contentHash(text), attributes),
        reference.fingerprint(contentHash(text), attributes),
      )
  }
  assert.match(chunkId('support', 'ticket', '42', 0), /^[0-9a-f]{32}$/)
  assert.match(chunkFingerprint(contentHash('x'), {}), /^[A-Za-z0-9_-]{22}$/)
})
