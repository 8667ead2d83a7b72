import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { hashSubject, isSubject } from '../../src/governance/subject.ts'

test('subjects are <type>:<id>', () => {
  for (const s of ['customer:42', 'employee:e-1007', 'user.account:abc@def']) assert.equal(isSubject(s), true, s)
  for (const s of ['customer', ':42', 'customer:', 'customer: 42', '42:customer x', 42, null])
    assert.equal(isSubject(s), false, String(s))
})

test('subject hashes are sha256 hex of the subject, never the subject', () => {
  const h = hashSubject('customer:42')
  assert.equal(h, createHash('sha256').update('customer:42').digest('hex'))
  assert.match(h, /^[0-9a-f]{64}$/)
  assert.ok(!h.includes('customer'))
  assert.notEqual(hashSubject('customer:43'), h)
})
