import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RagstreamError } from '../../../src/errors.ts'
import { buildDeletionRequest } from '../../../src/governance/forget/deletion-request.ts'
import {
  decodeSuppression,
  effectiveMode,
  encodeSuppression,
  findSuppression,
  mergeSuppression,
  subjectHashes,
  suppressionFromRequest,
  suppresses,
  type SuppressionRecord,
} from '../../../src/governance/forget/suppression.ts'
import { hashSubject } from '../../../src/governance/subject.ts'

const REQUESTED_AT = 1_764_000_000_000
const request = (mode: 'FOREVER' | 'BEFORE_REQUEST', requestedAtMs = REQUESTED_AT, requestId = 'req-1') =>
  buildDeletionRequest({
    subject: 'customer:42',
    reason: 'GDPR art. 17',
    requestedBy: 'dpo@example.com',
    requestedAtMs,
    mode,
    requestId,
  })

function store(...records: SuppressionRecord[]): (hash: string) => SuppressionRecord | undefined {
  const map = new Map(records.map((r) => [r.subjectHash, r]))
  return (hash) => map.get(hash)
}

test('FOREVER suppresses every record of the subject, old and new', () => {
  const s = suppressionFromRequest(request('FOREVER'), 'FOREVER')
  assert.equal(s.subjectHash, hashSubject('customer:42'))
  for (const ts of [0, REQUESTED_AT - 1, REQUESTED_AT, REQUESTED_AT + 86_400_000])
    assert.equal(suppresses(s, ts), true, String(ts))
})

test('BEFORE_REQUEST suppresses data with a source time before the request only', () => {
  const s = suppressionFromRequest(request('BEFORE_REQUEST'), 'BEFORE_REQUEST')
  assert.equal(s.mode, 'BEFORE_REQUEST')
  assert.equal(suppresses(s, 0), true)
  assert.equal(suppresses(s, REQUESTED_AT - 1), true)
  assert.equal(suppresses(s, REQUESTED_AT), false)
  assert.equal(suppresses(s, REQUESTED_AT + 1), false)
})

test('the stricter of topology and request mode applies', () => {
  assert.equal(effectiveMode('FOREVER', 'BEFORE_REQUEST'), 'FOREVER')
  assert.equal(effectiveMode('BEFORE_REQUEST', 'FOREVER'), 'FOREVER')
  assert.equal(effectiveMode('BEFORE_REQUEST', 'BEFORE_REQUEST'), 'BEFORE_REQUEST')
  assert.equal(suppressionFromRequest(request('BEFORE_REQUEST'), 'FOREVER').mode, 'FOREVER')
})

test('a record goes when any one of its subjects is suppressed', () => {
  const forgotten = store(suppressionFromRequest(request('FOREVER'), 'FOREVER'))
  assert.equal(findSuppression(subjectHashes(['customer:7', 'customer:42']), 5, forgotten)?.requestId, 'req-1')
  assert.equal(findSuppression(subjectHashes(['customer:7']), 5, forgotten), undefined)
  assert.equal(findSuppression([], 5, forgotten), undefined)
  const before = store(suppressionFromRequest(request('BEFORE_REQUEST'), 'BEFORE_REQUEST'))
  assert.equal(findSuppression(subjectHashes(['customer:42']), REQUESTED_AT - 1, before)?.mode, 'BEFORE_REQUEST')
  assert.equal(findSuppression(subjectHashes(['customer:42']), REQUESTED_AT + 1, before), undefined)
})

test('merging only ever grows suppression, and is order-independent and idempotent', () => {
  const early = suppressionFromRequest(request('BEFORE_REQUEST', REQUESTED_AT, 'req-a'), 'BEFORE_REQUEST')
  const late = suppressionFromRequest(request('BEFORE_REQUEST', REQUESTED_AT + 1000, 'req-b'), 'BEFORE_REQUEST')
  const forever = suppressionFromRequest(request('FOREVER', REQUESTED_AT + 500, 'req-c'), 'BEFORE_REQUEST')
  assert.equal(mergeSuppression(undefined, early), early)
  assert.equal(mergeSuppression(early, late), late)
  assert.equal(mergeSuppression(late, early), late)
  assert.equal(mergeSuppression(late, late), late)
  assert.equal(mergeSuppression(late, forever), forever)
  assert.equal(mergeSuppression(forever, late), forever)
  const orders = [
    [early, late, forever],
    [forever, late, early],
    [late, forever, early],
  ]
  const results = orders.map((o) =>
    o.reduce<SuppressionRecord | undefined>((acc, r) => mergeSuppression(acc, r), undefined),
  )
  for (const r of results) assert.deepEqual(r, forever)
})

test('the store value round-trips, never holds the subject, and is never empty', () => {
  const s = suppressionFromRequest(request('BEFORE_REQUEST'), 'BEFORE_REQUEST')
  const bytes = encodeSuppression(s)
  assert.ok(bytes.length > 0)
  assert.ok(!bytes.toString().includes('customer'))
  assert.deepEqual(decodeSuppression(bytes), s)
  assert.throws(
    () => decodeSuppression(Buffer.from('{')),
    (e: unknown) => e instanceof RagstreamError && e.code === 'RS_DECODE_FAILED',
  )
  assert.throws(() => decodeSuppression(Buffer.from('{"v":2}')), /unexpected shape/)
})
