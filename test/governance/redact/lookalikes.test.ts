/**
 * Look-alikes of issue 11 that are not personal data stay in the text, while the real values next
 * to them are still found.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { run } from './helpers.ts'

const kept = [
  'job 419f20ba8b0e458ba8cf34e663260445 failed',
  'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  'see https://github.com/acme/web/commit/95d67dc65273cfc6d0424aacd219bdfdf43b2646 for it',
  'https://github.com/acme/web/tree/95d67dc65273cfc6d0424aacd219bdfdf43b2646/src',
  'the monitoring agent 19.17.17.148 crashes',
  'after upgrading to 12.18.11.20 the sync stopped',
  'SDK 4.34.41.190 throws on init',
  'charge ch_3MmlLrLkdIwHu7ix0snN0B15 succeeded',
  'intent pi_3MtwBwLkdIwHu7ix28a3tqPa and customer cus_NffrFeUfNV2Hib',
  'Tracking number 9205 0358 1239 5974 5428 08 shows no movement',
  'Tracking number 9400111899223397654321 shows no movement',
  'Transaction id 4438430780228162 appears twice',
  'order 123456789 shipped',
]

for (const text of kept) {
  test(`kept: ${text}`, () => {
    assert.deepEqual(run(text).counts, {}, run(text).text)
  })
}

const found: [string, string][] = [
  // A dashless-UUID-shaped hex value named as a key is a key.
  ['api key: 419f20ba8b0e458ba8cf34e663260445', 'api key: [SECRET]'],
  ['Stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc', 'Stripe key [SECRET]'],
  ['Blocked IP: 19.17.17.148', 'Blocked IP: [IPV4]'],
  ['card 4438 4307 8022 8162 declined', 'card [CARD] declined'],
  ['qty 1 4111 1111 1111 1111', 'qty 1 [CARD]'],
  ['my SSN is 123456789.', 'my SSN is [SSN].'],
  ['123456789 is my social security number', '[SSN] is my social security number'],
  ['call 1 415-555-2671', 'call 1 [PHONE]'],
]

for (const [text, expected] of found) {
  test(`found: ${text}`, () => {
    assert.equal(run(text).text, expected)
  })
}

test('a UUID whose first groups happen to pass as a dash-grouped IBAN is kept', () => {
  const text = 'The export job ba56f321-8320-4265-905d-7367f290e98e failed.'
  assert.equal(run(text).text, text)
})
