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

test('the free text of a request (reason, requested_by) reaches Kafka with its PII masked', () => {
  const request = buildDeletionRequest({
    subject: 'customer:42',
    reason: 'GDPR art. 17 request from jane.doe@example.com, call back on +44 20 7946 0958',
    requestedBy: 'dpo@acme.example',
    requestedAtMs: 1_700_000_000_000,
  })
  assert.ok(!request.reason.includes('jane.doe@example.com'), request.reason)
  assert.ok(!request.reason.includes('7946 0958'), request.reason)
  assert.match(request.reason, /^GDPR art\. 17 request from \[EMAIL\]/)
  assert.equal(request.requested_by, '[EMAIL]')
  assert.equal(request.subject, 'customer:42', 'the subject is the key of the request: kept')
})
