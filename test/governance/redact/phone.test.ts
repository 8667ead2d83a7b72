import assert from 'node:assert/strict'
import { test } from 'node:test'
import { run } from './helpers.ts'

test('international formats are masked', () => {
  for (const value of [
    '+14155552671',
    '+1 415-555-2671',
    '+1 (415) 555-2671',
    '+44 20 7946 0958',
    '+44 (0)20 7946 0958',
    '+49 30 12345678',
    '+33 1 23 45 67 89',
    '+91 98765 43210',
    '+81 3-1234-5678',
  ]) {
    const out = run(`Call ${value} today`)
    assert.equal(out.text, 'Call [PHONE] today', value)
    assert.deepEqual(out.counts, { phone: 1 })
  }
})

test('national formats are masked: North American and trunk-prefixed European', () => {
  for (const value of [
    '(415) 555-2671',
    '(415) 055-2671',
    '415-555-2671',
    '415-155-2671',
    '415.555.2671',
    '415 555 2671',
    '020 7946 0958',
    '07911 123456',
    '030 12345678',
    '0151 23456789',
    '01 23 45 67 89',
    '06.12.34.56.78',
    '(020) 7946 0958',
    '(0151) 23456789',
    '(030) 1234-5678',
  ]) {
    assert.equal(run(`Call ${value} today`).text, 'Call [PHONE] today', value)
  }
})

test('dates, times, prices, versions and ids are not phone numbers', () => {
  for (const text of [
    'on 05.01.2024 10:30',
    'on 2024-01-15 at 09:30',
    'order 00012345678',
    'price 1,299.00',
    'version 10.2.33',
    'invoice 2026-000123',
    'NANP area codes start 2-9: 155-555-2671, and spaced exchanges too: 415 155 2671',
    'too short +1234567',
    'too long +1234567890123456',
    'ticket #4155552671',
  ]) {
    assert.deepEqual(run(text).counts, {}, text)
  }
})

test('a number followed by more digits is cut at the last group that makes it valid', () => {
  assert.equal(run('call +44 20 7946 0958 10.0.0.1').text, 'call [PHONE] [IPV4]')
  // Ambiguous runs take the longest valid number: 15 digits is E.164's maximum.
  assert.equal(run('call +1 415 555 2671 1234 5678').text, 'call [PHONE] 5678')
  assert.equal(run('call 020 7946 0958 1234 5678 90').text, 'call [PHONE] 1234 5678 90')
})
