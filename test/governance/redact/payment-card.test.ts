import assert from 'node:assert/strict'
import { test } from 'node:test'
import { luhnValid } from '../../../src/governance/redact/payment-card.ts'
import { run } from './helpers.ts'

test('Luhn', () => {
  assert.equal(luhnValid('4111111111111111'), true)
  assert.equal(luhnValid('4111111111111112'), false)
  assert.equal(luhnValid('378282246310005'), true)
})

test('card numbers of the major networks are masked, plain or grouped by spaces or dashes', () => {
  for (const value of [
    '4111111111111111',
    '4111 1111 1111 1111',
    '5555-5555-5555-4444',
    '2223 0031 2200 3222',
    '3782 822463 10005',
    '6011111111111117',
    '3530111333300000',
    '3056 930902 5904',
    '4222222222222',
  ]) {
    const out = run(`charged on ${value} twice`)
    assert.equal(out.text, 'charged on [CARD] twice', value)
    assert.deepEqual(out.counts, { payment_card: 1 })
  }
})

test('Luhn-invalid numbers, unknown issuers and longer digit runs are not cards', () => {
  for (const text of ['4111 1111 1111 1112', '1234 5678 9012 3452', 'id 41111111111111110000123', '7111111111111111']) {
    assert.deepEqual(run(text).counts, {}, text)
  }
})

test('a card followed by more digits after a space is still found', () => {
  assert.equal(run('card 4111 1111 1111 1111 2027').text, 'card [CARD] 2027')
  assert.equal(run('card 4111 1111 1111 1111 123 twice').text, 'card [CARD] 123 twice')
  assert.equal(run('card 4111-1111-1111-1111-12').text, 'card [CARD]-12')
})
