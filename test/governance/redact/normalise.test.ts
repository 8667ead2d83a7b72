/**
 * The normalised view: every shape a value is written in is found, and the whole original value is
 * masked (escapes, Unicode dashes and spaces, line breaks included), never a part of it.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TextView } from '../../../src/governance/redact/normalise.ts'
import { buildRedactor } from '../../../src/governance/redact/redactor.ts'
import { run } from './helpers.ts'

test('a view whose edits keep every position needs no segments; one that starts with a removal maps', () => {
  const kept = new TextView().build('Hi team,\n\ncall 415\u2013555\u20132671.\nThanks', false)
  assert.equal(kept.text, 'Hi team,\n\ncall 415-555-2671.\nThanks')
  assert.equal(kept.segments, 0)
  const shifted = new TextView().build('\u200bAKIA', false)
  assert.equal(shifted.text, 'AKIA')
  assert.equal(shifted.originalStart(0), 1)
  assert.equal(shifted.originalEnd(4), 5)
})

test('a plain ASCII text without % or line breaks is its own view', () => {
  const view = new TextView().build('call 415-555-2671 now', false)
  assert.equal(view.text, 'call 415-555-2671 now')
  assert.equal(view.segments, 0)
})

test('positions map back through decoded escapes, mapped dashes and collapsed line breaks', () => {
  const original = 'a%40b.com\u2011x \r\n  y\u200bz'
  const view = new TextView().build(original, false)
  assert.equal(view.text, 'a@b.com-x yz')
  // "@" came from "%40": a span covering it covers the whole escape.
  assert.equal(view.originalStart(1), 1)
  assert.equal(view.originalEnd(2), 4)
  // The collapsed line break maps back to the whole white-space run.
  const space = view.text.indexOf(' ')
  assert.equal(original.slice(view.originalStart(space), view.originalEnd(space + 1)), ' \r\n  ')
  // The zero-width space inside "yz" is covered by a span over both letters.
  assert.equal(original.slice(view.originalStart(10), view.originalEnd(12)), 'y\u200bz')
})

test('the joined view removes a single line break inside a token and records it', () => {
  const view = new TextView().build('key AKIAABCD\nEFGHIJKLMNOP.\n\nThanks,\nAnna', true)
  // Line breaks after punctuation end no value: they stay as they are.
  assert.equal(view.text, 'key AKIAABCDEFGHIJKLMNOP.\n\nThanks,\nAnna')
  assert.deepEqual(view.joins, [12])
  assert.equal(view.crossesJoin(4, 24), true)
  assert.equal(view.crossesJoin(12, 24), false)
})

const cases: [string, string, string][] = [
  ['SSN with en dashes', 'SSN 123\u201345\u20136789 on file', 'SSN [SSN] on file'],
  ['SSN with non-breaking hyphens', 'SSN 123\u201145\u20116789 on file', 'SSN [SSN] on file'],
  ['SSN with dots', 'SSN 123.45.6789 on file', 'SSN [SSN] on file'],
  ['phone with NBSP', 'call +44\u00a020\u00a07946\u00a00958 today', 'call [PHONE] today'],
  ['phone URL-encoded', 'tel link ?to=%2B44%2020%207946%200958&x=1', 'tel link ?to=[PHONE]&x=1'],
  ['phone in a wa.me link', 'https://wa.me/447946095812 works', 'https://wa.me/[PHONE] works'],
  ['phone wrapped', 'call +44 20 7946\n0958 today', 'call [PHONE] today'],
  ['card with dots', 'card 4111.1111.1111.1111 declined', 'card [CARD] declined'],
  ['card with mixed separators', 'card 4111 1111-1111 1111 declined', 'card [CARD] declined'],
  ['card with NBSP groups', 'card 4111\u00a01111\u00a01111\u00a01111 declined', 'card [CARD] declined'],
  ['card over a line break', 'card 4111 1111\n1111 1111 declined', 'card [CARD] declined'],
  ['IBAN lower case', 'iban de89 3704 0044 0532 0130 00 ok', 'iban [IBAN] ok'],
  ['IBAN with dashes', 'iban DE89-3704-0044-0532-0130-00 ok', 'iban [IBAN] ok'],
  ['IBAN with NBSP', 'iban DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000 ok', 'iban [IBAN] ok'],
  ['email split after @', 'mail anna.schmidt@\nexample.com please', 'mail [EMAIL] please'],
  ['email with %40', 'mailto:anna.schmidt%40example.com please', 'mailto:[EMAIL] please'],
  ['AWS key wrapped', 'key AKIAIOSFODNN7\nEXAMPLE leaked', 'key [SECRET] leaked'],
]

for (const [name, text, expected] of cases) {
  test(`normalised: ${name}`, () => {
    assert.equal(run(text).text, expected)
  })
}

test('a value at the end of a line does not swallow the next line, and a prose line break joins nothing', () => {
  assert.equal(run('from 10.0.0.1\nThanks').text, 'from [IPV4]\nThanks')
  assert.equal(run('write to anna@example.com\nOrder 5').text, 'write to [EMAIL]\nOrder 5')
  assert.equal(run('Hi team,\nthe sync\nbroke').text, 'Hi team,\nthe sync\nbroke')
})

test('overlapping findings of different detectors merge into one span, labelled by the first detector', () => {
  // A custom pattern overlapping the tail of a phone number: one mask over both, counted once.
  const redactor = buildRedactor({ custom: [{ name: 'ref', pattern: /0958-XYZ/ }] })
  const out = run('ref +44 20 7946 0958-XYZ end', redactor)
  assert.equal(out.text, 'ref [PHONE] end')
  assert.deepEqual(out.counts, { phone: 1 })
})
