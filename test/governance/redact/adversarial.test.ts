/**
 * Inputs built to make a backtracking regex engine go quadratic or exponential: long runs of the
 * characters a detector's candidate pattern accepts, with the one character that would complete a
 * match missing. Each must come back correct. The `timeout` only stops a hang from blocking the
 * suite; nothing here asserts a duration.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { buildRedactor } from '../../../src/governance/redact/redactor.ts'
import { seededRandom } from '../../support/seeded-random.ts'
import { run } from './helpers.ts'

const N = 200_000

const UNCHANGED: readonly [string, string][] = [
  ['email local part without domain', 'a'.repeat(N) + '@'],
  ['email dotted local part and dotted domain without TLD', 'a.'.repeat(N / 2) + '@' + 'b1.'.repeat(N / 3)],
  ['digit run (cards, phones, SSNs)', '1'.repeat(N)],
  ['spaced digits', '1 '.repeat(N / 2)],
  ['dashed digits', '12-'.repeat(N / 3)],
  ['plus-digits', '+1 '.repeat(N / 3)],
  ['IBAN prefix and alphanumerics', 'DE89 ' + 'A1 '.repeat(N / 3)],
  ['dotted numbers', '1.'.repeat(N / 2)],
  ['colon hex', 'a:'.repeat(N / 2)],
  ['colon hex with dots', 'ab:1.'.repeat(N / 5)],
  ['JWT header without payload', 'eyJ' + 'a'.repeat(N) + '.'],
  ['Slack prefix with dashes', 'xoxb-' + '-'.repeat(N)],
  ['low-entropy token run', 'ab'.repeat(N / 2)],
  ['parenthesised digits', '(1)'.repeat(N / 3)],
  ['password keywords followed by prose', 'password is '.repeat(N / 12)],
  ['email TLDs followed by dashed runs', 'a@b.cc-d-'.repeat(N / 9).replaceAll('@', '@@')],
  ['colon runs glued to words', 'ab:cd:ef:end '.repeat(N / 13)],
  ['one long run of short hex segments joined by dashes', '0123456789abcdef-'.repeat(N / 17)],
]

for (const [name, text] of UNCHANGED) {
  test(`adversarial: ${name} (${text.length} chars) is left unchanged`, { timeout: 60_000 }, () => {
    const out = run(text)
    assert.equal(out.text.length, text.length)
    assert.ok(out.text === text)
    assert.deepEqual(out.counts, {})
  })
}

test(
  'adversarial: BEGIN lines without a body are each masked (a bare marker is still a key paste)',
  { timeout: 60_000 },
  () => {
    const count = Math.floor(N / 28)
    const out = run('-----BEGIN PRIVATE KEY-----\n'.repeat(count))
    assert.equal(out.text, '[SECRET]\n'.repeat(count))
    assert.deepEqual(out.counts, { secret: count })
  },
)

test('adversarial: a PEM header followed by 100,000 short words gives the words back', { timeout: 60_000 }, () => {
  const words = 'a '.repeat(N / 2)
  assert.deepEqual(run(`-----BEGIN PRIVATE KEY----- ${words}`), { text: `[SECRET] ${words}`, counts: { secret: 1 } })
})

test('adversarial: a 200 kB random token is one secret', { timeout: 60_000 }, () => {
  const random = seededRandom(1)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  let token = ''
  for (let i = 0; i < N; i++) token += alphabet[Math.floor(random() * 64)]
  assert.deepEqual(run(`token ${token} end`), { text: 'token [SECRET] end', counts: { high_entropy: 1 } })
})

test('adversarial: a PEM block with a 200 kB body is one secret', { timeout: 60_000 }, () => {
  const text = '-----BEGIN PRIVATE KEY-----\n' + 'QUJD\n'.repeat(N / 5) + '-----END PRIVATE KEY-----'
  assert.deepEqual(run(`x ${text} y`), { text: 'x [SECRET] y', counts: { secret: 1 } })
})

test('adversarial: real values survive between adversarial runs', { timeout: 60_000 }, () => {
  const noise = '1'.repeat(N / 4) + ' ' + 'a'.repeat(N / 4) + '@ '
  const out = run(`${noise}anna@example.com ${noise}4111 1111 1111 1111 ${noise}`)
  assert.deepEqual(out.counts, { email: 1, payment_card: 1 })
  assert.ok(!out.text.includes('anna@example.com') && !out.text.includes('4111 1111'))
})

test('adversarial: a custom pattern is scanned once per text', { timeout: 60_000 }, () => {
  const redactor = buildRedactor({ custom: [{ name: 'ref', pattern: /\bREF-\d{1,8}\b/ }] })
  const text = 'REF-'.repeat(N / 4)
  assert.deepEqual(run(text, redactor).counts, {})
})

test(
  'adversarial: tens of thousands of findings of several kinds in one text are merged in one pass each',
  { timeout: 60_000 },
  () => {
    const unit = 'a@example.com +44 20 7946 0958 10.0.0.1 '
    const count = Math.floor(N / unit.length) * 2
    const out = run(unit.repeat(count))
    assert.equal(out.text, '[EMAIL] [PHONE] [IPV4] '.repeat(count))
    assert.deepEqual(out.counts, { email: count, phone: count, ipv4: count })
  },
)

test(
  'adversarial: tens of thousands of values wrapped at a line break are joined in one pass each',
  { timeout: 60_000 },
  () => {
    // Every address is found in the plain view ("x@y.co") and again, longer, across the break in the
    // joined view ("x@y.com"): the overlap check must not compare every pair.
    // 50,000 values: the pairwise check took ~11 s here, the binary searches take under one.
    const count = Math.floor(N / 4)
    const started = performance.now()
    const out = run('x@y.co\nm '.repeat(count))
    assert.equal(out.counts.email, count)
    assert.ok(performance.now() - started < 5_000, `${performance.now() - started} ms`)
  },
)
