import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import avsc from 'avsc'
import { AUDIT_KIND_DEFAULT, AUDIT_KINDS, auditEvent } from '../../src/governance/audit.ts'

const schema = JSON.parse(readFileSync(new URL('../../schemas/audit-event.avsc', import.meta.url), 'utf8'))

test('audit event values have exactly the fields and kinds of schemas/audit-event.avsc', () => {
  const kindField = schema.fields.find((f: { name: string }) => f.name === 'kind')
  assert.deepEqual(
    [...AUDIT_KINDS],
    kindField.type.symbols.filter((s: string) => s !== AUDIT_KIND_DEFAULT),
  )
  const value = auditEvent({ kind: 'DENIED', topology: 'support', atMs: 1, identity: 'x' })
  // `auth` is the one field an event gains later: the encoder signs it (src/governance/forget/governance-codecs.ts).
  const unsigned = schema.fields.map((f: { name: string }) => f.name).filter((name: string) => name !== 'auth')
  assert.deepEqual(Object.keys(value).sort(), unsigned.sort())
  const auth = schema.fields.find((f: { name: string }) => f.name === 'auth')
  assert.deepEqual([auth.type, auth.default], [['null', 'string'], null], 'auth must stay optional for old readers')
})

test('a kind a reader does not know reads as the enum default; old events read under the new schema', () => {
  const symbols: string[] = schema.fields.find((f: { name: string }) => f.name === 'kind').type.symbols
  assert.equal(symbols.at(-1), AUDIT_KIND_DEFAULT, 'the default comes after the kinds the first schema had')
  const writer = avsc.Type.forSchema(schema)
  // A reader of this schema meeting a later kind (a writer with one more symbol).
  const later = structuredClone(schema)
  later.fields.find((f: { name: string }) => f.name === 'kind').type.symbols.push('LATER_KIND')
  const laterType = avsc.Type.forSchema(later)
  const event = { ...auditEvent({ kind: 'TRUNCATED', topology: 'x', atMs: 1, identity: 'i' }), auth: null }
  const fromLater = writer.createResolver(laterType)
  assert.equal(writer.fromBuffer(laterType.toBuffer({ ...event, kind: 'LATER_KIND' }), fromLater).kind, 'UNKNOWN')
  // Events written under the first schema (six kinds, no default) read the same under this one.
  const first = structuredClone(schema)
  const firstKind = first.fields.find((f: { name: string }) => f.name === 'kind').type
  firstKind.symbols = symbols.slice(0, 6)
  delete firstKind.default
  const firstType = avsc.Type.forSchema(first)
  const denied = { ...event, kind: 'DENIED' }
  assert.equal(writer.fromBuffer(firstType.toBuffer(denied), writer.createResolver(firstType)).kind, 'DENIED')
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
