import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConfigError } from '../../../src/errors.ts'
import { buildRedactor } from '../../../src/governance/redact/redactor.ts'
import { run } from './helpers.ts'

test('custom patterns mask with their label and count under their name', () => {
  const redactor = buildRedactor({
    custom: [
      { name: 'employee_id', pattern: /\bEMP-\d{6}\b/ },
      { name: 'case_ref', pattern: 'CASE/[0-9]{4}', label: 'CASE', action: 'drop' },
    ],
  })
  const out = run('EMP-123456 opened CASE/2024 for EMP-654321.', redactor)
  assert.equal(out.text, '[EMPLOYEE_ID] opened  for [EMPLOYEE_ID].')
  assert.deepEqual(out.counts, { employee_id: 2, case_ref: 1 })
})

test('custom pattern problems are reported with their paths', () => {
  assert.throws(
    () =>
      buildRedactor({
        custom: [
          { name: 'Bad Name', pattern: '[' },
          { name: 'empty', pattern: 'x*' },
          { name: 'redos', pattern: '(a+)+b' },
          { name: 'email', pattern: 'x' },
        ],
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError)
      const paths = error.problems.map((p) => p.path)
      assert.deepEqual(paths, [
        '/redact/custom/0/name',
        '/redact/custom/0/pattern',
        '/redact/custom/1/pattern',
        '/redact/custom/2/pattern',
        '/redact/custom/3/name',
      ])
      assert.match(error.message, /catastrophic backtracking/)
      assert.match(error.message, /matches the empty string/)
      assert.match(error.message, /duplicates detector name email/)
      return true
    },
  )
})
