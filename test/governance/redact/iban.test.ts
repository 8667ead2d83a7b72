import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ibanChecksumValid } from '../../../src/governance/redact/iban.ts'
import { run } from './helpers.ts'

test('mod-97 check', () => {
  assert.equal(ibanChecksumValid('DE89370400440532013000'), true)
  assert.equal(ibanChecksumValid('DE89370400440532013001'), false)
})

test('IBANs are masked with and without spaces', () => {
  for (const value of [
    'DE89370400440532013000',
    'DE89 3704 0044 0532 0130 00',
    'GB82 WEST 1234 5698 7654 32',
    'FR1420041010050500013M02606',
    'NL91ABNA0417164300',
    'CH9300762011623852957',
    'NO9386011117947',
  ]) {
    const out = run(`wire to ${value} please`)
    assert.equal(out.text, 'wire to [IBAN] please', value)
    assert.deepEqual(out.counts, { iban: 1 })
  }
})

test('the IBAN ends at its country length even when upper-case words follow', () => {
  assert.equal(run('IBAN DE89 3704 0044 0532 0130 00 IS MINE').text, 'IBAN [IBAN] IS MINE')
})

test('wrong check digits, wrong length and unknown countries are not IBANs', () => {
  for (const text of [
    'DE88 3704 0044 0532 0130 00',
    'DE89 3704 0044 0532 0130 0',
    'ZZ89370400440532013000',
    'XX12ABCDEFGHIJKLMNOP',
  ]) {
    assert.equal(run(text).counts.iban, undefined, text)
  }
})
