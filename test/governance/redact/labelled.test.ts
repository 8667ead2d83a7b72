/**
 * A slice of the labelled benchmark (bench/governance-labelled.ts): every detector × variant class
 * of issue 11 (values written with Unicode dashes and spaces, URL-encoded, wrapped, dotted, in lower
 * case, in messaging links, and the joined customer's values in the text) leaks nothing, and every
 * look-alike kind stays within 2 % false positives.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fillerFindings, piecesOf, scoreLookalikes, scoreVariants } from '../../fixtures/governance/score.ts'
import {
  generateLookalikeCorpus,
  generateVariantCorpus,
  LOOKALIKE_KINDS,
  VARIANT_CLASSES,
} from '../../fixtures/governance/variants.ts'
import { maskAll, withKey } from './helpers.ts'

const PER_CLASS = 50
const variants = generateVariantCorpus({ seed: 21, perClass: PER_CLASS })
const lookalikes = generateLookalikeCorpus({ seed: 22, perKind: PER_CLASS })

test('the scorer sees a partly masked value as leaked', () => {
  assert.deepEqual(piecesOf('fr56\u00a04215-1021'), ['fr56', '4215', '1021', 'fr5642151021'])
  const [score] = scoreVariants(maskAll, [
    {
      id: 'x',
      text: 'IBAN fr76 3000 6000 0112 3456 7890 189 please',
      customer: { name: 'Ann Lee', email: 'ann@example.org', phone: '+1 415 555 2671' },
      values: [{ detector: 'iban', variant: 'test', written: 'fr76 3000 6000 0112 3456 7890 18' }],
    },
  ])
  // The written value is cut one character short of the real IBAN: the detector masks the real
  // one whole, so nothing of the written value survives.
  assert.equal(score.leaked, 0)
  const [partial] = scoreVariants({ ...maskAll, redactText: (text) => text.replace('3000 6000', '[X]') }, [
    {
      id: 'y',
      text: 'IBAN FR76 3000 6000 0112 please',
      customer: { name: 'Ann Lee', email: 'ann@example.org', phone: '+1 415 555 2671' },
      values: [{ detector: 'iban', variant: 'test', written: 'FR76 3000 6000 0112' }],
    },
  ])
  assert.equal(partial.leaked, 1)
})

for (const [name, redactor] of [
  ['mask', maskAll],
  ['pseudonymise', withKey({ defaultAction: 'pseudonymise' })],
] as const) {
  test(`${name}: 0 of ${PER_CLASS} values leak in each of the ${VARIANT_CLASSES.length} detector × variant classes`, () => {
    const scores = scoreVariants(redactor, variants)
    assert.equal(scores.length, VARIANT_CLASSES.length)
    for (const s of scores) assert.equal(s.values, PER_CLASS, `${s.detector}/${s.variant}`)
    const leaked = scores
      .filter((s) => s.leaked > 0)
      .map((s) => `${s.detector}/${s.variant}: ${JSON.stringify(s.examples)}`)
    assert.deepEqual(leaked, [])
  })
}

test(`each of the ${LOOKALIKE_KINDS.length} look-alike kinds stays within 2 % false positives, and the filler has none`, (t) => {
  const scores = scoreLookalikes(maskAll, lookalikes)
  assert.equal(scores.length, LOOKALIKE_KINDS.length)
  for (const s of scores) {
    t.diagnostic(`${s.kind}: ${s.falsePositives}/${s.values}`)
    assert.ok(
      s.falsePositives / s.values <= 0.02,
      `${s.kind}: ${s.falsePositives}/${s.values} ${JSON.stringify(s.examples)}`,
    )
  }
  assert.deepEqual(fillerFindings(maskAll, lookalikes), {})
})
