import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RagstreamError } from '../../../src/errors.ts'
import { deadLetterExpiryMs } from '../../../src/governance/forget/dead-letter.ts'
import {
  formatReceipt,
  receiptAuditEvent,
  receiptJson,
  verificationQuery,
  type ForgetReceipt,
} from '../../../src/governance/forget/receipt.ts'
import { hashSubject } from '../../../src/governance/subject.ts'

const requestedAtMs = Date.UTC(2026, 10, 26, 10, 0, 0)
const receipt: ForgetReceipt = {
  requestId: '4f1c2d3e-0000-4000-8000-000000000001',
  subjectHash: hashSubject('customer:42'),
  topology: 'support',
  chunksTombstoned: 12,
  rowsDeleted: { 'ragstream.support_v1': 12, 'ragstream.support_v2': 11 },
  requestedAtMs,
  confirmedAtMs: requestedAtMs + 1234,
  verification: verificationQuery(['ragstream.support_v1', 'ragstream.support_v2']),
  remaining: 0,
  deadLettersExpireByMs: deadLetterExpiryMs(requestedAtMs, { retentionMs: 7 * 86_400_000, segmentMs: 86_400_000 }),
}

test('the receipt names the request, the hashed subject, counts per table, times and the verification query', () => {
  assert.equal(
    formatReceipt(receipt),
    [
      'forget receipt',
      '  request       4f1c2d3e-0000-4000-8000-000000000001',
      `  subject       sha256 ${hashSubject('customer:42')}`,
      '  topology      support',
      '  chunks        12 tombstoned',
      '  rows deleted  23 in total',
      '    ragstream.support_v1  12',
      '    ragstream.support_v2  11',
      '  requested     2026-11-26T10:00:00.000Z',
      '  confirmed     2026-11-26T10:00:01.234Z (1.234 s after the request)',
      '  dead letters  written before the request expire by 2026-12-04T10:05:00.000Z',
      '  verification  0 rows remain:',
      '    SELECT count(*) AS remaining FROM (SELECT 1 FROM "ragstream"."support_v1" WHERE "subjects" @> ARRAY[$1]::text[] UNION ALL SELECT 1 FROM "ragstream"."support_v2" WHERE "subjects" @> ARRAY[$1]::text[]) AS t;',
      '    -- $1 = the subject',
    ].join('\n'),
  )
})

test('the receipt never carries the subject', () => {
  assert.ok(!formatReceipt(receipt).includes('customer:42'))
  assert.ok(!receiptJson(receipt).includes('customer:42'))
  assert.equal(JSON.parse(receiptJson(receipt)).confirmedAt, '2026-11-26T10:00:01.234Z')
})

test('one DELETION_CONFIRMED audit event per request, with the counts', () => {
  const event = receiptAuditEvent(receipt, 'v2')
  assert.equal(event.kind, 'DELETION_CONFIRMED')
  assert.equal(event.request_id, receipt.requestId)
  assert.equal(event.subject_hash, receipt.subjectHash)
  assert.deepEqual(event.counts, {
    chunks_tombstoned: 12,
    remaining: 0,
    'rows_deleted:ragstream.support_v1': 12,
    'rows_deleted:ragstream.support_v2': 11,
  })
  assert.equal(
    event.event_id,
    receiptAuditEvent({ ...receipt, confirmedAtMs: receipt.confirmedAtMs + 5 }, 'v2').event_id,
    'the event id depends on the request only',
  )
})

test('verification identifiers pass an allow-list; the subject is a bound parameter', () => {
  assert.deepEqual(verificationQuery(['idx'], { column: 'subject_hashes', parameter: 'subject_hash' }), {
    sql: 'SELECT count(*) AS remaining FROM (SELECT 1 FROM "idx" WHERE "subject_hashes" @> ARRAY[$1]::text[]) AS t',
    parameter: 'subject_hash',
  })
  for (const bad of ['support"; DROP TABLE x; --', 'a.b.c', 'Upper', 'x'.repeat(64)]) {
    assert.throws(
      () => verificationQuery([bad]),
      (e: unknown) => e instanceof RagstreamError && e.code === 'RS_IDENTIFIER_INVALID',
      bad,
    )
  }
  assert.throws(() => verificationQuery([]), /at least one table/)
})

test('a topology name with a hyphen verifies (the sink names its table chunks_support-copilot_v1)', () => {
  assert.match(
    verificationQuery(['ragstream.chunks_support-copilot_v1']).sql,
    /FROM "ragstream"\."chunks_support-copilot_v1" WHERE/,
  )
  for (const bad of ['chunks_a"-b', 'x-"y', "it's"])
    assert.throws(
      () => verificationQuery([bad]),
      (e: unknown) => e instanceof RagstreamError,
      bad,
    )
})

test('a receipt that found nothing of the subject says so (a typo must not look like a forget)', () => {
  const empty: ForgetReceipt = { ...receipt, chunksTombstoned: 0, rowsDeleted: { 'ragstream.support_v1': 0 } }
  assert.match(formatReceipt(empty), /note {10}nothing of this subject was found/)
  assert.equal(JSON.parse(receiptJson(empty)).nothingFound, true)
  assert.doesNotMatch(formatReceipt(receipt), /nothing of this subject/)
  assert.equal(JSON.parse(receiptJson(receipt)).nothingFound, false)
})
