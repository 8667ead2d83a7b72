// Error codes are a contract: every code is documented in docs/errors.md with the same retry flag,
// and every documented code exists.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { ConfigError, ERROR_CODES, RagstreamError, isRetriable } from '../src/errors.ts'

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
const documented = new Map(
  [...doc.matchAll(/^\| `(RS_[A-Z_]+)` \| (yes|no) \|/gm)].map((m) => [m[1], m[2] === 'yes'] as const),
)

test('every error code is documented with its retry flag, and every documented code exists', () => {
  for (const [code, { retriable }] of Object.entries(ERROR_CODES)) {
    assert.ok(documented.has(code), `${code} is missing from docs/errors.md`)
    assert.equal(documented.get(code), retriable, `${code}: retriable flag differs from docs/errors.md`)
  }
  for (const code of documented.keys()) assert.ok(code in ERROR_CODES, `docs/errors.md documents unknown ${code}`)
})

test('retry behaviour is decided by the code, and context travels with the error', () => {
  const error = new RagstreamError('RS_DECODE_FAILED', 'bad envelope', {
    context: { topic: 't', partition: 2, offset: 7n },
  })
  assert.equal(error.retriable, false)
  assert.equal(isRetriable(error), false)
  assert.equal(isRetriable(new RagstreamError('RS_EMBEDDING_FAILED', 'HTTP 503')), true)
  assert.equal(isRetriable(new Error('plain')), false)
  assert.deepEqual(error.context, { topic: 't', partition: 2, offset: 7n })
})

test('a ConfigError lists every problem with its path', () => {
  const error = new ConfigError([
    { path: '/topology/nodes/join-customers/foreignKey', message: 'required' },
    { path: '/sink/table', message: 'longer than 63 bytes' },
  ])
  assert.equal(error.code, 'RS_CONFIG_INVALID')
  assert.match(error.message, /\/topology\/nodes\/join-customers\/foreignKey: required/)
  assert.match(error.message, /\/sink\/table: longer than 63 bytes/)
  assert.equal(error.problems.length, 2)
})
