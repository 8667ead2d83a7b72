import assert from 'node:assert/strict'
import { test } from 'node:test'
import { deletionAppliedAudit, deletionRequestedAudit } from '../../../src/governance/forget/deletion-audit.ts'
import { buildDeletionRequest } from '../../../src/governance/forget/deletion-request.ts'
import { hashSubject } from '../../../src/governance/subject.ts'

const request = buildDeletionRequest({
  subject: 'customer:42',
  reason: 'Anna Schmidt asked by phone',
  requestedBy: 'dpo',
  requestedAtMs: 1000,
  requestId: 'req-1',
})

test('DELETION_REQUESTED: one per request, hashed subject, no free text', () => {
  const event = deletionRequestedAudit(request, 'support')
  assert.equal(event.kind, 'DELETION_REQUESTED')
  assert.equal(event.request_id, 'req-1')
  assert.equal(event.subject_hash, hashSubject('customer:42'))
  assert.equal(event.at_ms, 1000)
  assert.equal(deletionRequestedAudit(request, 'support').event_id, event.event_id)
  const json = JSON.stringify(event)
  assert.ok(!json.includes('customer:42') && !json.includes('Anna'))
})

test('DELETION_APPLIED: one per request and partition, with counts per store', () => {
  const applied = {
    topology: 'support',
    topologyVersion: 'v2',
    requestId: 'req-1',
    subjectHash: hashSubject('customer:42'),
    partition: 3,
    chunksTombstoned: 7,
    storeKeysRemoved: { 'chunk-sets': 2, 'embedding-cache': 7 },
    atMs: 2000,
  }
  const event = deletionAppliedAudit(applied)
  assert.equal(event.kind, 'DELETION_APPLIED')
  assert.deepEqual(event.counts, {
    chunks_tombstoned: 7,
    partition: 3,
    'store_keys_removed:chunk-sets': 2,
    'store_keys_removed:embedding-cache': 7,
  })
  assert.equal(
    deletionAppliedAudit({ ...applied, atMs: 3000 }).event_id,
    event.event_id,
    'a re-processed batch writes the same event',
  )
  assert.notEqual(deletionAppliedAudit({ ...applied, partition: 4 }).event_id, event.event_id)
})
