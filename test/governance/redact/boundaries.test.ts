/**
 * Seeded values between randomly chosen neighbours (brackets, quotes, punctuation, glued words,
 * numbers, an IP address): none may survive. Passwords get their keyword, since that is what
 * finds them.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { generateLabelledCorpus } from '../../fixtures/governance/corpus.ts'
import { seededRandom } from '../../support/seeded-random.ts'
import { run } from './helpers.ts'

const LEFT = [' ', '\n', '(', '"', "'", ': ', '=', ', ', '[', '<', 'x ', '1 ', '. ', '\t', '*', '- ']
const RIGHT = [
  ' ',
  '\n',
  ')',
  '"',
  "'",
  '.',
  ',',
  ';',
  ']',
  '>',
  ' x',
  ' 1',
  '. Next',
  '!',
  '?',
  ':',
  '/',
  ' 10.0.0.1',
  ' 2026',
  '-',
  '-end',
  '.end',
  ':end',
  '/end',
]

test('seeded values survive no neighbourhood', () => {
  const values = generateLabelledCorpus({ seed: 99, perKind: 200 }).tickets.flatMap((t) => t.seeded)
  const random = seededRandom(5)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
  const leaks: string[] = []
  for (let i = 0; i < 5000; i++) {
    const { kind, value } = pick(values)
    const left = kind === 'password' ? `${pick(LEFT)}password: ` : pick(LEFT)
    const text = `start${left}${value}${pick(RIGHT)}end`
    const out = run(text).text
    const core = kind === 'secret' && value.startsWith('-----') ? value.split('\n')[1] : value
    if (out.includes(core)) leaks.push(`${kind}: ${JSON.stringify(text)}`)
  }
  assert.deepEqual(leaks, [])
})
