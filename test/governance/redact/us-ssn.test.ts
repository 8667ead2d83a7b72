import assert from 'node:assert/strict'
import { test } from 'node:test'
import { run } from './helpers.ts'

test('SSNs with dashes or spaces are masked', () => {
  for (const value of ['123-45-6789', '001-01-0001', '665 12 3456', '899-99-9999']) {
    const out = run(`SSN ${value}.`)
    assert.equal(out.text, 'SSN [SSN].', value)
    assert.deepEqual(out.counts, { us_ssn: 1 })
  }
})

test('numbers the SSA never issues are not SSNs', () => {
  for (const value of [
    '000-12-3456',
    '666-12-3456',
    '900-12-3456',
    '987-65-4321',
    '123-00-4567',
    '123-45-0000',
    '078-05-1120',
    '219-09-9999',
  ]) {
    assert.equal(run(`SSN ${value}.`).counts.us_ssn, undefined, value)
  }
})

test('mixed separators, unformatted runs and longer numbers are not SSNs', () => {
  for (const text of ['123-45 6789', '123456789', '1123-45-6789', '123-45-67890', '123-45-6789-1']) {
    assert.equal(run(text).counts.us_ssn, undefined, text)
  }
})
