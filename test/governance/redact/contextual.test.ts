/**
 * Contextual redaction: the joined rows' personal values are redacted wherever the text repeats
 * them, in their case and white-space variants, and the config's `joined` paths pick them out of
 * the policy's joined metadata.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { compilePolicy } from '../../../src/governance/policy.ts'
import { buildRedactor } from '../../../src/governance/redact/redactor.ts'
import { maskAll } from './helpers.ts'

function redact(text: string, joined: readonly string[]): { text: string; counts: Record<string, number> } {
  const counts: Record<string, number> = {}
  return { text: maskAll.redactText(text, counts, { joined }), counts }
}

test('a joined name is redacted in sign-offs, whole or by its parts, in case and white-space variants', () => {
  const joined = ['Jane Doe']
  for (const [text, expected] of [
    ['Thanks,\nJane Doe', 'Thanks,\n[NAME]'],
    ['Thanks, jane doe', 'Thanks, [NAME]'],
    ['Regards, JANE\u00a0 DOE', 'Regards, [NAME]'],
    ['Best,\nJane\nDoe', 'Best,\n[NAME]'],
    ['Cheers, Jane', 'Cheers, [NAME]'],
    ['Dear Ms DOE,', 'Dear Ms [NAME],'],
  ]) {
    const out = redact(text, joined)
    assert.equal(out.text, expected, text)
  }
  // A lower-case lone part is a word, not a name; a name inside a longer word is not the name.
  assert.equal(redact('the doe and Janet', joined).text, 'the doe and Janet')
})

test('a joined e-mail and phone are redacted in their written variants', () => {
  const joined = ['Jane.Doe@Example.org', '+44 20 7946 0958']
  assert.equal(redact('write to jane.doe@example.org', joined).text, 'write to [EMAIL]')
  assert.equal(redact('call 020 7946 0958', joined).text, 'call [PHONE]')
  // Found by the contextual matcher only: a national number without trunk zero, as digits.
  const out = redact('ref 2079460958 please', joined)
  assert.equal(out.text, 'ref [PHONE] please')
  assert.deepEqual(out.counts, { joined: 1 })
})

test('a value both a detector and the context find is counted once, under the detector', () => {
  const out = redact('mail jane.doe@example.org today', ['jane.doe@example.org'])
  assert.deepEqual(out.counts, { email: 1 })
})

test('pseudonyms of joined values do not depend on how the value was written', () => {
  const redactor = buildRedactor({ defaultAction: 'pseudonymise' }, { RAGSTREAM_PSEUDONYM_KEY: 'k'.repeat(32) })
  const a = redactor.redactText('Thanks, Jane Doe', {}, { joined: ['Jane Doe'] })
  const b = redactor.redactText('Thanks, JANE\n doe', {}, { joined: ['Jane Doe'] })
  assert.match(a, /^Thanks, \[NAME:[0-9a-f]{12}\]$/)
  assert.equal(a, b)
})

test('redact.joined picks the values out of the policy joined metadata; other rows are untouched', () => {
  const policy = compilePolicy(
    {
      name: 'support',
      version: '1',
      classify: () => 'internal',
      redact: { joined: { 'customer.name': 'name', 'customer.email': 'email', 'customer.phone': 'phone' } },
    },
    { topology: 't' },
  )
  const record = {
    key: 'ticket:1',
    text: 'It broke again.\nThanks, Jane Doe',
    metadata: { by: 'jane doe' },
    timestampMs: 1,
  }
  const joined = { customer: { name: 'Jane Doe', email: 'jane@example.org', phone: '+1 415 555 2671' } }
  const decision = policy.govern(record, joined)
  assert.equal(decision.action, 'emit')
  if (decision.action !== 'emit') return
  assert.equal(decision.text, 'It broke again.\nThanks, [NAME]')
  assert.deepEqual(decision.metadata, { by: '[NAME]' })
  assert.deepEqual(decision.redactionCounts, { joined: 2 })
  const other = policy.govern(record, { customer: { name: 'Max Mustermann' } })
  assert.equal(other.action === 'emit' && other.text, record.text)
})

test('a bad joined rule is a config problem naming its path', () => {
  assert.throws(
    () => buildRedactor({ joined: { 'customer.name': 'person' as never } }),
    (error: Error) => error.message.includes('/redact/joined/customer.name'),
  )
})
