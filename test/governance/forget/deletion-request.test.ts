import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { ConfigError } from '../../../src/errors.ts'
import { buildDeletionRequest } from '../../../src/governance/forget/deletion-request.ts'

const schema = JSON.parse(readFileSync(new URL('../../../schemas/deletion-request.avsc', import.meta.url), 'utf8'))

test('a deletion request value has exactly the fields of schemas/deletion-request.avsc', () => {
  const value = buildDeletionRequest({ subject: 'customer:42', reason: 'GDPR', requestedBy: 'dpo', requestedAtMs: 1 })
  assert.deepEqual(Object.keys(value).sort(), schema.fields.map((f: { name: string }) => f.name).sort())
  assert.equal(value.mode, 'FOREVER')
  assert.match(value.request_id, /^[0-9a-f-]{36}$/)
  const modes = schema.fields.find((f: { name: string }) => f.name === 'mode').type.symbols
  assert.deepEqual(modes, ['FOREVER', 'BEFORE_REQUEST'])
})

test('invalid input is reported per field, without repeating the subject', () => {
  assert.throws(
    () =>
      buildDeletionRequest({
        subject: 'Anna Schmidt',
        reason: ' ',
        requestedBy: '',
        requestedAtMs: -1,
        mode: 'SOMETIMES' as never,
        requestId: 'a b',
      }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError)
      assert.deepEqual(
        error.problems.map((p) => p.path),
        [
          '/forget/subject',
          '/forget/reason',
          '/forget/requestedBy',
          '/forget/requestedAtMs',
          '/forget/mode',
          '/forget/requestId',
        ],
      )
      assert.ok(!error.message.includes('Anna'))
      return true
    },
  )
})
