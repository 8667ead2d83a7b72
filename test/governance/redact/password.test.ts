import assert from 'node:assert/strict'
import { test } from 'node:test'
import { run } from './helpers.ts'

test('the value after a password keyword is masked, the keyword stays', () => {
  const cases: [string, string][] = [
    ['My password is Summer2024! if you need it.', 'My password is [PASSWORD] if you need it.'],
    ['Login: admin / password: hunter2', 'Login: admin / password: [PASSWORD]'],
    ['the new pwd=Xk9#mP2q', 'the new pwd=[PASSWORD]'],
    ['PIN: 4711 (from the letter)', 'PIN: [PASSWORD] (from the letter)'],
    ['Passwort: Geheim123.', 'Passwort: [PASSWORD].'],
    ['password was dragon_Shadow42, now changed', 'password was [PASSWORD], now changed'],
  ]
  for (const [text, expected] of cases) {
    const out = run(text)
    assert.equal(out.text, expected, text)
    assert.deepEqual(out.counts, { password: 1 }, text)
  }
})

test('prose after the keyword is not a password', () => {
  for (const text of [
    'The password is incorrect.',
    'The password is Wrong again',
    'password reset link expired',
    'the password: see the letter',
    'shipping: 3 days',
    'passwords are hashed',
  ]) {
    assert.deepEqual(run(text).counts, {}, text)
  }
})
