import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { AUDIT_KINDS, auditEvent } from '../../src/governance/audit.ts'

const schema = JSON.parse(readFileSync(new URL('../../schemas/audit-event.avsc', import.meta.url), 'utf8'))

test('audit event values have exactly the fields and kinds of schemas/audit-event.avsc', () => {
  const kindField = schema.fields.find((f: { name: string }) => f.name === 'kind')
  assert.deepEqual([...AUDIT_KINDS], kindField.type.symbols)
  const value = auditEvent({ kind: 'DENIED', topology: 'support', atMs: 1, identity: 'x' })
  // `auth` is the one field an event gains later: the encoder signs it (src/governance/forget/governance-codecs.ts).
  const unsigned = schema.fields.map((f: { name: string }) => f.name).filter((name: string) => name !== 'auth')
  assert.deepEqual(Object.keys(value).sort(), unsigned.sort())
  const auth = schema.fields.find((f: { name: string }) => f.name === 'auth')
  assert.deepEqual([auth.type, auth.default], [['null', 'string'], null], 'auth must stay optional for old readers')
})

test('event ids are deterministic per identity, so re-processing writes the same event', () => {
  const input = {
    kind: 'DENIED',
    topology: 'support',
    entityKeyHash: 'ab',
    reason: 'r',
    atMs: 5,
    identity: 'p0@12',
  } as const
  assert.equal(auditEvent(input).event_id, auditEvent(input).event_id)
  assert.notEqual(auditEvent(input).event_id, auditEvent({ ...input, identity: 'p0@13' }).event_id)
  assert.match(auditEvent(input).event_id, /^[0-9a-f]{32}$/)
})
