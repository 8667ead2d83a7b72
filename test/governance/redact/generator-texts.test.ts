/**
 * The project's data generator (src/generator) seeds support tickets with emails, phone numbers,
 * cards and IBANs for the end-to-end governance tests; none of its values may survive redaction.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SeededRandom } from '../../../src/generator/random.ts'
import { cardNumber, email, iban, phone, ticketText } from '../../../src/generator/texts.ts'
import { run } from './helpers.ts'

test('values made by the data generator are all redacted, alone and inside its ticket texts', () => {
  const rng = new SeededRandom(11)
  for (let i = 0; i < 500; i++) {
    for (const [kind, value] of [
      ['email', email(rng)],
      ['phone', phone(rng)],
      ['payment_card', cardNumber(rng)],
      ['iban', iban(rng)],
    ] as const) {
      const out = run(`value: ${value}.`)
      assert.deepEqual(out.counts, { [kind]: 1 }, value)
    }
  }
  for (let i = 0; i < 500; i++) {
    const text = ticketText(rng, 'Grace Hopper', 'Widget Pro')
    const out = run(`${text.subject}\n${text.body}`)
    assert.ok(!/\d{4} \d{4} \d{4}|@|\(\d{3}\) \d{3}-\d{4}|\+44 20/.test(out.text), out.text)
  }
})
