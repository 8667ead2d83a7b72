import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { BUILT_IN_DETECTORS, countDigits, digitsOf, precededBy } from '../../../src/governance/redact/detector.ts'

test('every built-in detector is documented in docs/governance.md, and nothing else is', () => {
  const docs = readFileSync(new URL('../../../docs/governance.md', import.meta.url), 'utf8')
  const table = docs.slice(docs.indexOf('| kind | label |'), docs.indexOf('**High-entropy thresholds**'))
  const documented = [...table.matchAll(/^\| `([a-z_0-9]+)` \|/gm)].map((m) => m[1])
  assert.deepEqual(documented, [...BUILT_IN_DETECTORS], 'the table lists the detectors in priority order')
})

test('digit helpers and context look-back', () => {
  assert.equal(countDigits('a1b22c', 0, 6), 3)
  assert.equal(digitsOf('+44 (0)20-7946'), '440207946')
  assert.equal(precededBy('driver version 10.2.0.1', 15, /version\s*$/), true)
  assert.equal(precededBy(`${'version '.repeat(10)}x 10.2.0.1`, 90, /version\s*$/), false)
})
