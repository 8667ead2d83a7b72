import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConfigError, RagstreamError } from '../../src/errors.ts'
import { compilePolicy, definePolicy, type GovernRecord, type JoinedMetadata } from '../../src/governance/policy.ts'
import { hashId, hashSubject } from '../../src/governance/subject.ts'

const ENV = { RAGSTREAM_PSEUDONYM_KEY: 'policy-test-key-0123456789abcdef0123456789' }

const supportPolicy = definePolicy({
  name: 'support',
  version: '3',
  deny: [
    {
      name: 'no-consent',
      reason: 'customer withdrew consent',
      when: (_r: GovernRecord, c: JoinedMetadata) => c.consent === false,
    },
  ],
  classify: (_r: GovernRecord, c: JoinedMetadata) =>
    c.tier === 'restricted' ? 'restricted' : c.tier === 'vip' ? 'confidential' : 'internal',
  outputs: { eu: { maxClassification: 'confidential' }, us: { maxClassification: 'internal' } },
  residency: (_r: GovernRecord, c: JoinedMetadata) =>
    c.region === 'EU' ? 'eu' : c.region === 'US' ? 'us' : { deny: 'no residency for this region' },
  subjects: (_r: GovernRecord, c: JoinedMetadata) => [`customer:${c.id}`],
  redact: { detectors: { email: 'pseudonymise' }, fields: { 'contact.phone': 'drop' } },
})

const policy = compilePolicy(supportPolicy, { topology: 'support', topologyVersion: 'v1', env: ENV })

const record: GovernRecord = {
  key: 'ticket:981',
  text: 'Refund to anna@example.com, card 4111 1111 1111 1111.',
  metadata: { title: 'Refund', contact: { phone: '+1 415-555-2671', name: 'Anna' } },
  timestampMs: 1_764_000_000_000,
}
const customer = { id: 42, consent: true, tier: 'standard', region: 'EU' }

test('emit: redacted text and metadata, classification, region, subjects, policy version, counts', () => {
  const d = policy.govern(record, customer)
  assert.equal(d.action, 'emit')
  if (d.action !== 'emit') return
  assert.match(d.text, /^Refund to \[EMAIL:[0-9a-f]{12}\], card \[CARD\]\.$/)
  assert.deepEqual(d.metadata, { title: 'Refund', contact: { name: 'Anna' } })
  assert.equal(d.classification, 'internal')
  assert.equal(d.region, 'eu')
  assert.deepEqual(d.subjects, ['customer:42'])
  assert.equal(d.policyVersion, 'support@3')
  assert.deepEqual(d.redactionCounts, { email: 1, payment_card: 1, 'field:contact.phone': 1 })
})

test('subjects computed once by the operator can be passed to govern', () => {
  let calls = 0
  const counted = compilePolicy(
    { name: 'p', version: '1', subjects: () => (calls++, ['customer:1']) },
    { topology: 't', env: {} },
  )
  const subjects = counted.subjects(record, {})
  const d = counted.govern(record, {}, subjects)
  assert.equal(calls, 1)
  assert.equal(d.action === 'emit' && d.subjects, subjects)
})

test('deny rule: the reason and an audit event with ids and hashes, never content', () => {
  const d = policy.govern(record, { ...customer, consent: false })
  assert.equal(d.action, 'deny')
  if (d.action !== 'deny') return
  assert.equal(d.reason, 'customer withdrew consent')
  assert.equal(d.audit.kind, 'DENIED')
  assert.equal(d.audit.topology, 'support')
  assert.equal(d.audit.topology_version, 'v1')
  assert.equal(d.audit.entity_key_hash, hashId('ticket:981'))
  assert.equal(d.audit.subject_hash, hashSubject('customer:42'))
  assert.equal(d.audit.reason, 'customer withdrew consent')
  assert.equal(d.audit.at_ms, record.timestampMs)
  const serialised = JSON.stringify(d)
  for (const leak of ['anna@example.com', '4111', 'ticket:981', 'customer:42', 'Anna', '555-2671'])
    assert.ok(!serialised.includes(leak), leak)
  assert.deepEqual(
    policy.govern(record, { ...customer, consent: false }),
    d,
    'pure: same input, same decision and event id',
  )
})

test('residency routes records per region, or denies them', () => {
  const us = policy.govern(record, { ...customer, region: 'US' })
  assert.equal(us.action === 'emit' && us.region, 'us')
  const none = policy.govern(record, { ...customer, region: 'APAC' })
  assert.equal(none.action, 'deny')
  assert.equal(none.action === 'deny' && none.reason, 'residency: no residency for this region')
})

test('per-output maximum classification: a reclassified customer is denied where the output does not accept it', () => {
  const vipEu = policy.govern(record, { ...customer, tier: 'vip' })
  assert.equal(vipEu.action === 'emit' && vipEu.classification, 'confidential')
  const vipUs = policy.govern(record, { ...customer, tier: 'vip', region: 'US' })
  assert.equal(
    vipUs.action === 'deny' && vipUs.reason,
    'classification confidential exceeds internal, the maximum of output us',
  )
  const restricted = policy.govern(record, { ...customer, tier: 'restricted' })
  assert.equal(restricted.action, 'deny')
  assert.equal(restricted.action === 'deny' && restricted.audit.kind, 'DENIED')
})

test('defaults: one output, every label accepted, no classify means the highest label, no subjects', () => {
  const minimal = compilePolicy({ name: 'min', version: '1' }, { topology: 't', env: {} })
  const d = minimal.govern({ ...record, metadata: {} }, {})
  assert.equal(d.action, 'emit')
  if (d.action !== 'emit') return
  assert.equal(d.region, 'default')
  assert.equal(d.classification, 'restricted')
  assert.deepEqual(d.subjects, [])
  assert.equal(d.text, 'Refund to [EMAIL], card [CARD].')
})

test('a custom scale with per-output maxima', () => {
  const p = compilePolicy(
    {
      name: 'hr',
      version: '2026.1',
      labels: ['open', 'team', 'hr-only'],
      classify: (r) => (r.text.includes('salary') ? 'hr-only' : 'team'),
      outputs: { main: { maxClassification: 'team' } },
    },
    { topology: 'hr', env: {} },
  )
  assert.equal(p.govern({ ...record, text: 'desk move' }, {}).action, 'emit')
  assert.equal(p.govern({ ...record, text: 'salary review' }, {}).action, 'deny')
})

test('policy functions that throw or return nonsense make the record invalid, without its content', () => {
  const broken = compilePolicy(
    {
      name: 'broken',
      version: '1',
      classify: (_r, c) =>
        c.mode === 'throw'
          ? (() => {
              throw new Error('bad customer anna@example.com')
            })()
          : (c.label as string),
      subjects: (_r, c) => (c.subject === undefined ? [] : [c.subject as string]),
      outputs: { eu: {}, us: {} },
      residency: (_r, c) => c.region as string,
    },
    { topology: 't', env: {} },
  )
  const cases: [JoinedMetadata, RegExp][] = [
    [{ mode: 'throw' }, /classify threw Error/],
    [{ label: 'secret', region: 'eu' }, /classify returned a label that is not on the scale/],
    [{ label: 'public', region: 'mars' }, /residency returned neither an output \(eu, us\) nor \{ deny: reason \}/],
    [{ label: 'public', region: 'eu', subject: 'not a subject' }, /subjects returned an invalid subject at index 0/],
  ]
  for (const [joined, message] of cases) {
    assert.throws(
      () => broken.govern(record, joined),
      (error: unknown) => {
        assert.ok(error instanceof RagstreamError)
        assert.equal(error.code, 'RS_RECORD_INVALID')
        assert.equal(error.retriable, false)
        assert.match(error.message, message)
        assert.ok(
          !error.message.includes('anna@example.com') &&
            !error.message.includes('mars') &&
            !error.message.includes('not a subject'),
        )
        return true
      },
    )
  }
})

test('validation: one ConfigError naming every problem by path', () => {
  assert.throws(
    () =>
      compilePolicy(
        {
          name: 'Support Policy',
          version: '',
          labels: ['public', 'public'],
          deny: [
            { name: 'x', reason: '', when: 'yes' as never },
            { name: 'x', reason: 'ok', when: () => true },
          ],
          classify: 'internal' as never,
          outputs: { eu: { maxClassification: 'secret' }, us: {} },
          redact: { detectors: { email: 'pseudonymise' } },
          colour: 'blue',
        } as never,
        { topology: 'support', env: {} },
      ),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError)
      assert.deepEqual(
        error.problems.map((p) => p.path),
        [
          '/policy/colour',
          '/policy/name',
          '/policy/version',
          '/policy/labels/1',
          '/policy/deny/0/reason',
          '/policy/deny/0/when',
          '/policy/deny/1/name',
          '/policy/classify',
          '/policy/residency',
          '/policy/redact/pseudonymKeyEnv',
        ],
      )
      assert.match(error.message, /\/policy\/residency: required when there is more than one output/)
      return true
    },
  )
})

test('validation: an unknown maxClassification is named once the scale is valid', () => {
  assert.throws(
    () =>
      compilePolicy(
        { name: 'p', version: '1', outputs: { eu: { maxClassification: 'secret' } } },
        { topology: 't', env: {} },
      ),
    /\/policy\/outputs\/eu\/maxClassification: must be one of public, internal, confidential, restricted/,
  )
})

test('REDACTED and RECLASSIFIED audit events carry counts and labels, never content', () => {
  const d = policy.govern(record, customer)
  assert.equal(d.action, 'emit')
  if (d.action !== 'emit') return
  const redacted = policy.redactionAudit(record, d)
  assert.equal(redacted?.kind, 'REDACTED')
  assert.deepEqual(redacted?.counts, { email: 1, payment_card: 1, 'field:contact.phone': 1 })
  assert.equal(redacted?.entity_key_hash, hashId('ticket:981'))
  const clean = policy.govern({ ...record, text: 'nothing here', metadata: {} }, customer)
  assert.equal(clean.action === 'emit' && policy.redactionAudit(record, clean), undefined)
  const reclassified = policy.reclassificationAudit(record, ['customer:42'], 'internal', 'restricted')
  assert.equal(reclassified.kind, 'RECLASSIFIED')
  assert.equal(reclassified.reason, 'internal -> restricted')
  assert.deepEqual(reclassified.counts, { from: 1, to: 3 })
  assert.equal(reclassified.subject_hash, hashSubject('customer:42'))
  for (const event of [redacted, reclassified]) {
    const json = JSON.stringify(event)
    for (const leak of ['anna@example.com', '4111', 'ticket:981', 'customer:42']) assert.ok(!json.includes(leak), leak)
  }
})
