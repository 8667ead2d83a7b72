import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createHmac } from 'node:crypto'
import { inspect } from 'node:util'
import { ConfigError } from '../../../src/errors.ts'
import { buildRedactor } from '../../../src/governance/redact/redactor.ts'
import { OTHER_KEY, TEST_KEY, run, withKey } from './helpers.ts'

const config = { defaultAction: 'pseudonymise' } as const

test('pseudonyms are stable per key, canonical per value, and differ across keys', () => {
  const a = withKey(config)
  const b = withKey(config)
  const other = withKey(config, OTHER_KEY)
  const text = 'Mail Anna.Schmidt@Example.com or call +44 20 7946 0958.'
  const first = run(text, a).text
  assert.match(first, /^Mail \[EMAIL:[0-9a-f]{12}\] or call \[PHONE:[0-9a-f]{12}\]\.$/)
  assert.equal(run(text, b).text, first, 'same key, same tokens')
  assert.equal(
    run('Mail anna.schmidt@example.com or call +442079460958.', a).text,
    first,
    'canonical forms share a token',
  )
  const second = run(text, other).text
  assert.notEqual(second, first)
  assert.notEqual(second.slice(5, 25), first.slice(5, 25))
  assert.notEqual(
    run('Mail grace@example.com', a).text.slice(5),
    first.slice(5, 25),
    'different values, different tokens',
  )
})

test('the key never appears in output, errors, or an inspected redactor', () => {
  const redactor = withKey({ ...config, fields: { secret: 'pseudonymise' } })
  const out = run('Mail anna@example.com, card 4111 1111 1111 1111, from 10.0.0.1', redactor)
  assert.ok(!out.text.includes(TEST_KEY.slice(0, 12)))
  const fields = redactor.redactMetadata({ secret: 'hunter2', note: 'call +1 415-555-2671' }, {})
  assert.ok(!JSON.stringify(fields).includes(TEST_KEY.slice(0, 12)) && !JSON.stringify(fields).includes('hunter2'))
  assert.ok(!inspect(redactor, { depth: 10, showHidden: true }).includes(TEST_KEY))
  assert.ok(!JSON.stringify(redactor).includes(TEST_KEY))
  const short = 'too-short-key'
  assert.throws(
    () => buildRedactor(config, { RAGSTREAM_PSEUDONYM_KEY: short }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError)
      assert.deepEqual(
        error.problems.map((p) => p.path),
        ['/redact/pseudonymKeyEnv'],
      )
      assert.match(error.message, /RAGSTREAM_PSEUDONYM_KEY holds a key shorter than 32 bytes/)
      assert.ok(!error.message.includes(short) && !inspect(error).includes(short))
      return true
    },
  )
})

test('a missing key fails at build time, naming the variable; no key is needed without pseudonymisation', () => {
  assert.throws(
    () => buildRedactor({ ...config, pseudonymKeyEnv: 'MY_KEY' }, {}),
    /\/redact\/pseudonymKeyEnv: environment variable MY_KEY is not set/,
  )
  assert.doesNotThrow(() => buildRedactor({ defaultAction: 'mask' }, {}))
})

test('the pseudonym is HMAC-SHA256(key, label NUL value), for short and long (> 64 byte) keys', () => {
  for (const key of [TEST_KEY, 'k'.repeat(100)]) {
    const expected = createHmac('sha256', key).update('EMAIL\u0000anna@example.com').digest('hex').slice(0, 12)
    assert.equal(run('anna@example.com', withKey(config, key)).text, `[EMAIL:${expected}]`)
  }
})
