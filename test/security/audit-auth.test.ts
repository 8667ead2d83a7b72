// Authentic deletes: the sink applies a DELETION_APPLIED only when the processor's audit key signed
// it; forged, unsigned and tampered events are recorded in sink_rejects and delete nothing.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { auditKey, signAudit, verifyAudit, type SignedAuditFields } from '../../src/security/audit-auth.ts'
import { PgvectorSink } from '../../src/sink/pgvector-sink.ts'
import { endpoints } from '../support/stack.ts'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, storedOffsets, waitFor } from '../sink/support.ts'

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex')

function event(overrides: Partial<SignedAuditFields> = {}): SignedAuditFields {
  return {
    event_id: 'e1',
    kind: 'DELETION_APPLIED',
    topology: 'support',
    topology_version: 'v1',
    request_id: 'r1',
    subject_hash: sha256('customer:1'),
    entity_key_hash: null,
    reason: 'gdpr',
    counts: { chunks_removed: 2, entities: 1 },
    at_ms: 1_700_000_000_000,
    ...overrides,
  }
}

test('audit signatures: verify only under the same key and the same fields; longs sign alike as numbers or bigints', () => {
  const key = randomBytes(32)
  const auth = signAudit(event(), key)
  assert.match(auth, /^hmac-sha256:[0-9a-f]{64}$/)
  assert.ok(verifyAudit(event(), auth, key))
  assert.ok(verifyAudit(event({ at_ms: 1_700_000_000_000n, counts: { entities: 1n, chunks_removed: 2n } }), auth, key))
  assert.ok(!verifyAudit(event(), auth, randomBytes(32)), 'another key')
  for (const tampered of [
    event({ subject_hash: sha256('customer:2') }),
    event({ topology: 'other' }),
    event({ counts: { chunks_removed: 3, entities: 1 } }),
    event({ request_id: null }),
  ])
    assert.ok(!verifyAudit(tampered, auth, key))
  for (const bad of [null, undefined, '', 'hmac-sha256:00', auth.toUpperCase()])
    assert.ok(!verifyAudit(event(), bad, key))
})

test('the audit key: RAGSTREAM_AUDIT_KEY, else a key file created once with mode 0600 and shared by every reader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-audit-key-'))
  const env = { RAGSTREAM_STACK_DIR: dir }
  const first = auditKey(env)
  const file = join(dir, 'secrets', 'audit-hmac.key')
  assert.equal(readFileSync(file, 'utf8').trim(), first.toString())
  assert.equal(statSync(file).mode & 0o777, 0o600)
  assert.deepEqual(auditKey(env), first, 'a second reader gets the same key')
  assert.deepEqual(auditKey({ ...env, RAGSTREAM_AUDIT_KEY: 'k'.repeat(40) }), Buffer.from('k'.repeat(40)))
  assert.throws(() => auditKey({ RAGSTREAM_AUDIT_KEY: 'short' }), /at least 32 characters/)
})

test('sink: forged, unsigned and tampered DELETION_APPLIED events are refused and recorded; the signed one deletes', async (t) => {
  const env = await createSinkEnv(t, { dims: 8 })
  const { config } = env
  const producer = await chunkProducer(t, config)
  const key = randomBytes(32)
  await producer.send(
    await Promise.all(
      ['a#0', 'a#1', 'b#0'].map(async (id) => ({
        key: id,
        value: await producer.encodeChunk({ ...chunkEvent(config, { id }), subjects: [`customer:${id[0]}`] }),
      })),
    ),
  )
  const deletion = (id: string): SignedAuditFields =>
    event({ event_id: id, request_id: `req-${id}`, topology: config.topology, subject_hash: sha256('customer:a') })
  const genuine = deletion('genuine')
  const forged = [
    { ...deletion('unsigned') },
    { ...deletion('other-key'), auth: signAudit(deletion('other-key'), randomBytes(32)) },
    // A genuine signature moved onto another subject.
    { ...deletion('tampered'), subject_hash: sha256('customer:b'), auth: signAudit(deletion('tampered'), key) },
  ]
  await producer.send(
    await Promise.all(
      forged.map(async (e) => ({ key: e.event_id, value: await producer.encodeAudit({ auth: null, ...e }) })),
    ),
  )
  const sink = new PgvectorSink({
    config,
    postgresUrl: env.sinkUrl,
    kafkaBrokers: endpoints.kafkaBrokers,
    schemaRegistryUrl: endpoints.schemaRegistryUrl,
    auditKey: key,
  })
  const done = sink.run()
  done.catch(() => {})
  t.after(async () => {
    sink.stop()
    await done.catch(() => {})
  })
  await waitFor(
    'the sink to read the forged events',
    async () => ((await storedOffsets(env.admin, config)).get(0) ?? 0n) >= 5n,
  )
  assert.deepEqual([...(await readChunks(env.admin, config)).keys()].sort(), ['a#0', 'a#1', 'b#0'], 'nothing deleted')
  const rejects = await env.admin.query<{ error_code: string; message: string; record_key: string }>(
    `SELECT error_code, message, record_key FROM ${config.names.rejectsTable} ORDER BY "offset"`,
  )
  assert.deepEqual(
    rejects.rows.map((r) => [r.record_key, r.error_code]),
    forged.map((e) => [e.event_id, 'RS_AUDIT_UNAUTHENTICATED']),
  )
  assert.match(rejects.rows[0].message, /not signed: refused, nothing deleted/)
  assert.match(rejects.rows[1].message, /signed with another key/)
  const audits = await env.admin.query(`SELECT count(*)::int AS n FROM ${config.names.auditTable}`)
  assert.equal(audits.rows[0].n, 0, 'no genuine-looking audit row for a forged event')

  await producer.send([
    { key: genuine.event_id, value: await producer.encodeAudit({ ...genuine, auth: signAudit(genuine, key) }) },
  ])
  await waitFor('the signed deletion to apply', async () => !(await readChunks(env.admin, config)).has('a#0'))
  assert.deepEqual([...(await readChunks(env.admin, config)).keys()], ['b#0'])
  const applied = await env.admin.query<{ event_id: string }>(`SELECT event_id FROM ${config.names.auditTable}`)
  assert.deepEqual(
    applied.rows.map((r) => r.event_id),
    ['genuine'],
  )
})
