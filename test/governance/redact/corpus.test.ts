/**
 * The labelled corpus through the redactor: every seeded value of every detector kind is removed,
 * counts equal the seeded numbers, and false positives on the clean corpus stay under a stated bound.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { digitsOf } from '../../../src/governance/redact/detector.ts'
import type { RedactionCounts } from '../../../src/governance/redact/redactor.ts'
import { CORPUS_KINDS, generateCleanCorpus, generateLabelledCorpus } from '../../fixtures/governance/corpus.ts'
import { maskAll, TEST_KEY, withKey } from './helpers.ts'

const corpus = generateLabelledCorpus({ seed: 42, perKind: 60 })

/** Forms of a seeded value that would still identify it in output. */
function tracesOf(kind: string, value: string): string[] {
  if (kind === 'payment_card' || kind === 'us_ssn') return [value, digitsOf(value)]
  if (kind === 'iban') return [value, value.replaceAll(' ', '')]
  if (kind === 'secret' && value.startsWith('-----BEGIN'))
    return value.split('\n').filter((line) => !line.startsWith('-----'))
  return [value]
}

test('the corpus seeds at least 50 values of every detector kind', () => {
  for (const kind of CORPUS_KINDS) assert.ok(corpus.counts[kind] >= 50, kind)
})

for (const [name, redactor] of [
  ['mask', maskAll],
  ['drop', withKey({ defaultAction: 'drop' })],
  ['pseudonymise', withKey({ defaultAction: 'pseudonymise' })],
] as const) {
  test(`${name}: 0 seeded values survive, and counts equal the seeded numbers per detector`, () => {
    const total: RedactionCounts = {}
    const survivors: string[] = []
    for (const ticket of corpus.tickets) {
      const counts: RedactionCounts = {}
      const out = redactor.redactText(ticket.text, counts)
      const expected: RedactionCounts = {}
      for (const { kind, value } of ticket.seeded) {
        expected[kind] = (expected[kind] ?? 0) + 1
        for (const trace of tracesOf(kind, value)) if (out.includes(trace)) survivors.push(`${ticket.id} ${kind}`)
      }
      assert.deepEqual(counts, expected, ticket.id)
      for (const [k, v] of Object.entries(counts)) total[k] = (total[k] ?? 0) + v
      assert.ok(!out.includes(TEST_KEY.slice(0, 12)))
    }
    assert.deepEqual(survivors, [])
    assert.deepEqual(total, { ...corpus.counts })
  })
}

// Measured: 0 false positives in 500 clean tickets (seed 7); seeds 1–8 gave 0 (one UUID taken for a
// dash-grouped IBAN in seed 6 was fixed). Before issue 11: 1–4, all 16-digit transaction ids that are
// Luhn-valid with a card issuer prefix, now recognised by the id word before them.
const FALSE_POSITIVE_BOUND = 1

test(`false positives on 500 clean tickets stay ≤ ${FALSE_POSITIVE_BOUND}`, (t) => {
  const clean = generateCleanCorpus({ seed: 7, tickets: 500 })
  const found: RedactionCounts = {}
  let total = 0
  for (const ticket of clean) {
    const counts: RedactionCounts = {}
    maskAll.redactText(ticket.text, counts)
    for (const [k, v] of Object.entries(counts)) {
      found[k] = (found[k] ?? 0) + v
      total += v
    }
  }
  t.diagnostic(`false positives: ${total} ${JSON.stringify(found)} in ${clean.length} tickets`)
  assert.ok(total <= FALSE_POSITIVE_BOUND, `${total} false positives: ${JSON.stringify(found)}`)
})
