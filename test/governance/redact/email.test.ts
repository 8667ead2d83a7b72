import assert from 'node:assert/strict'
import { test } from 'node:test'
import { run } from './helpers.ts'

test('emails are masked, with subdomains, plus tags and upper case', () => {
  for (const value of [
    'anna.schmidt@example.com',
    'b.okafor+tickets@mail.example.co.uk',
    'ADMIN@ACME-CORP.IO',
    'x_1%y@uni-hamburg.de',
  ]) {
    const out = run(`Reply to ${value}, please.`)
    assert.equal(out.text, 'Reply to [EMAIL], please.')
    assert.deepEqual(out.counts, { email: 1 })
  }
})

test('things with an @ that are not emails are left alone', () => {
  for (const text of ['@channel please look', 'user@localhost', 'meet @ 5pm', 'npm i @platformatic/kafka', 'a@b']) {
    assert.deepEqual(run(text).counts, {}, text)
  }
})

test('a trailing dot ends the address', () => {
  assert.equal(run('Write to grace@example.org.').text, 'Write to [EMAIL].')
})

test('the local part is at most 64 characters', () => {
  assert.equal(run(`${'a'.repeat(64)}@example.com`).text, '[EMAIL]')
  assert.deepEqual(run(`${'a'.repeat(65)}@example.com`).counts, {})
})

test('apostrophes in the local part and quotes around the address', () => {
  assert.equal(run("mail anna.o'brien@example.ie now").text, 'mail [EMAIL] now')
  assert.equal(run('mail \'anna@example.ie\' or "ben@example.ie"').text, 'mail \'[EMAIL]\' or "[EMAIL]"')
  assert.equal(run('see ...anna@example.ie').text, 'see ...[EMAIL]')
})

test('a dash after the TLD ends the address unless more labels follow', () => {
  assert.equal(run('pedro1981@posteo.de-based team').text, '[EMAIL]-based team')
  assert.equal(run('mail x@shop.co-op.org now').text, 'mail [EMAIL] now')
})
