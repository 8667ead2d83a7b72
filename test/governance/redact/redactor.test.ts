import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConfigError } from '../../../src/errors.ts'
import { BUILT_IN_DETECTORS } from '../../../src/governance/redact/detector.ts'
import { buildRedactor } from '../../../src/governance/redact/redactor.ts'
import { maskAll, run, withKey } from './helpers.ts'

test('every built-in detector is on by default, in priority order', () => {
  assert.deepEqual(maskAll.kinds, BUILT_IN_DETECTORS)
})

test('actions per detector: drop, mask, pseudonymise, off', () => {
  const redactor = withKey({ detectors: { email: 'drop', phone: 'pseudonymise', ipv4: false } })
  const out = run('a anna@example.com b +1 415-555-2671 c 10.0.0.1 d 123-45-6789', redactor)
  assert.match(out.text, /^a {2}b \[PHONE:[0-9a-f]{12}\] c 10\.0\.0\.1 d \[SSN\]$/)
  assert.deepEqual(out.counts, { email: 1, phone: 1, us_ssn: 1 })
})

test('overlapping candidates: the higher-priority detector wins, each value is counted once', () => {
  // The IBAN's digits contain a Luhn-valid card-like run; the SSN-shaped run is also trunk-phone-shaped.
  const out = run('IBAN ES37 4164 8468 1428 9153 6904 and 012-34-5678')
  assert.equal(out.text, 'IBAN [IBAN] and [SSN]')
  assert.deepEqual(out.counts, { iban: 1, us_ssn: 1 })
})

test('text without findings is returned as the same string', () => {
  const text = 'Order 123 shipped on 2026-11-25.'
  assert.equal(maskAll.redactText(text, {}), text)
  assert.equal(maskAll.redactText('', {}), '')
})

test('counts accumulate across calls and never hold values', () => {
  const counts = {}
  maskAll.redactText('anna@example.com', counts)
  maskAll.redactText('ben@example.com and 10.0.0.1', counts)
  assert.deepEqual(counts, { email: 2, ipv4: 1 })
})

test('field rules: drop, mask, pseudonymise with a detector label, keep, and redact nested strings', () => {
  const redactor = withKey({
    detectors: { email: 'pseudonymise' },
    fields: {
      internal_notes: 'drop',
      'customer.name': 'mask',
      'customer.email': { action: 'pseudonymise', label: 'EMAIL' },
      'customer.tags': 'keep',
      raw_id: 'pseudonymise',
    },
  })
  const metadata = {
    internal_notes: 'VIP, call +1 415-555-2671',
    customer: { name: 'Anna Schmidt', email: 'Anna@Example.com', tags: ['anna@example.com'], tier: 'gold' },
    subject: 'Refund to anna@example.com',
    raw_id: 42,
    count: 3,
  }
  const counts = {}
  const out = redactor.redactMetadata(metadata, counts) as Record<string, any>
  assert.equal('internal_notes' in out, false)
  assert.equal(out.customer.name, '[FIELD]')
  // The field pseudonym equals the text pseudonym of the same address under the EMAIL label.
  const inText = run('anna@example.com', redactor).text
  assert.match(inText, /^\[EMAIL:[0-9a-f]{12}\]$/)
  assert.equal(out.customer.email, inText)
  assert.deepEqual(out.customer.tags, ['anna@example.com'])
  assert.equal(out.customer.tier, 'gold')
  assert.equal(out.subject, `Refund to ${inText}`)
  assert.match(out.raw_id, /^\[FIELD:[0-9a-f]{12}\]$/)
  assert.equal(out.count, 3)
  assert.deepEqual(counts, {
    'field:internal_notes': 1,
    'field:customer.name': 1,
    'field:customer.email': 1,
    email: 1,
    'field:raw_id': 1,
  })
  assert.equal(metadata.customer.email, 'Anna@Example.com', 'the input is not modified')
})

test('metadata without findings is returned as the same object; metadataStrings: keep skips detectors', () => {
  const clean = { a: 'nothing here', b: { c: [1, 'two'] } }
  assert.equal(maskAll.redactMetadata(clean, {}), clean)
  const keep = buildRedactor({ metadataStrings: 'keep' })
  const meta = { note: 'anna@example.com' }
  assert.equal(keep.redactMetadata(meta, {}), meta)
})

test('one ConfigError lists every problem with its path', () => {
  assert.throws(
    () =>
      buildRedactor({
        defaultAction: 'hide' as never,
        detectors: { email: 'erase' as never, passport: 'mask' } as never,
        fields: { 'customer..email': 'drop', note: 'shred' as never, ok: { action: 'mask', label: 'lower' } },
        metadataStrings: 'maybe' as never,
        entropy: { minLength: -1, colour: 3 } as never,
        extra: true,
      } as never),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError)
      assert.equal(error.code, 'RS_CONFIG_INVALID')
      assert.deepEqual(error.problems.map((p) => p.path).sort(), [
        '/redact/defaultAction',
        '/redact/detectors/email',
        '/redact/detectors/passport',
        '/redact/entropy/colour',
        '/redact/entropy/minLength',
        '/redact/extra',
        '/redact/fields/customer..email',
        '/redact/fields/note',
        '/redact/fields/ok/label',
        '/redact/metadataStrings',
      ])
      return true
    },
  )
})

test('a JSON field named __proto__ is redacted like any other field', () => {
  const metadata = JSON.parse('{"__proto__": "anna@example.com", "nested": {"__proto__": {"x": "10.0.0.1"}}}')
  const counts = {}
  const out = maskAll.redactMetadata(metadata, counts)
  assert.equal(JSON.stringify(out), '{"__proto__":"[EMAIL]","nested":{"__proto__":{"x":"[IPV4]"}}}')
  assert.deepEqual(counts, { email: 1, ipv4: 1 })
})
