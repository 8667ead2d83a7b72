/**
 * Suppression: the durable memory that a subject was forgotten, so that no later event — a new CDC
 * change, or an old one replayed from earliest into a new index version — brings it back.
 *
 * The forgotten-subjects table is keyed by the subject's sha256 (so neither Redis keys nor values
 * hold the subject) and every row carries a value: a null would be a tombstone, compaction would
 * delete it, and a replay after that would resurrect the data.
 */
import { RagstreamError } from '../../errors.ts'
import { hashSubject } from '../subject.ts'
import type { DeletionRequestValue } from './deletion-request.ts'

/**
 * FOREVER: nothing about the subject is indexed again. BEFORE_REQUEST: only data whose source change
 * time is before the request is suppressed; data the subject creates afterwards (e.g. a returning
 * customer who consents again) is indexed.
 */
export type SuppressionMode = 'FOREVER' | 'BEFORE_REQUEST'

export interface SuppressionRecord {
  /** sha256 hex of the subject: the store key. */
  readonly subjectHash: string
  /** The request that set the current watermark. */
  readonly requestId: string
  readonly mode: SuppressionMode
  /** The request time: the watermark of BEFORE_REQUEST. */
  readonly requestedAtMs: number
}

/**
 * The mode a request gets in a topology: the stricter of the topology's configured mode and the
 * request's own. A topology configured FOREVER never lets a request weaken it; a request for
 * FOREVER is honoured by a BEFORE_REQUEST topology.
 */
export function effectiveMode(topologyMode: SuppressionMode, requestMode: SuppressionMode): SuppressionMode {
  return topologyMode === 'FOREVER' || requestMode === 'FOREVER' ? 'FOREVER' : 'BEFORE_REQUEST'
}

export function suppressionFromRequest(
  request: DeletionRequestValue,
  topologyMode: SuppressionMode,
): SuppressionRecord {
  return {
    subjectHash: hashSubject(request.subject),
    requestId: request.request_id,
    mode: effectiveMode(topologyMode, request.mode),
    requestedAtMs: request.requested_at_ms,
  }
}

/**
 * Folds a new request into the stored suppression. Suppression only ever grows: FOREVER stays
 * FOREVER, and a BEFORE_REQUEST watermark only moves later — so requests applied in any order, or
 * twice (a redelivered request after an aborted transaction), end in the same record.
 */
export function mergeSuppression(
  existing: SuppressionRecord | undefined,
  incoming: SuppressionRecord,
): SuppressionRecord {
  if (existing === undefined) return incoming
  if (existing.mode === 'FOREVER' && incoming.mode === 'FOREVER') {
    // The first request that forgot the subject stays the reference (ties broken by request id).
    if (incoming.requestedAtMs !== existing.requestedAtMs)
      return incoming.requestedAtMs < existing.requestedAtMs ? incoming : existing
    return incoming.requestId < existing.requestId ? incoming : existing
  }
  if (existing.mode === 'FOREVER') return existing
  if (incoming.mode === 'FOREVER') return incoming
  if (incoming.requestedAtMs > existing.requestedAtMs) return incoming
  if (incoming.requestedAtMs === existing.requestedAtMs && incoming.requestId > existing.requestId) return incoming
  return existing
}

/** Whether data with this source change time is suppressed by `record`. */
export function suppresses(record: SuppressionRecord, sourceTimestampMs: number): boolean {
  return record.mode === 'FOREVER' || sourceTimestampMs < record.requestedAtMs
}

/**
 * The suppression that removes a record with these subjects and source time, or undefined when the
 * record may be indexed. `lookup` reads the forgotten-subjects store by subject hash (prefetched for
 * the batch). One forgotten subject is enough: a ticket shared by two customers goes when either is
 * forgotten.
 */
export function findSuppression(
  subjectHashes: readonly string[],
  sourceTimestampMs: number,
  lookup: (subjectHash: string) => SuppressionRecord | undefined,
): SuppressionRecord | undefined {
  for (let i = 0; i < subjectHashes.length; i++) {
    const record = lookup(subjectHashes[i])
    if (record !== undefined && suppresses(record, sourceTimestampMs)) return record
  }
  return undefined
}

/** Subjects → their hashes, in order (the store keys to prefetch and look up). */
export function subjectHashes(subjects: readonly string[]): string[] {
  return subjects.map(hashSubject)
}

// Store value, JSON in UTF-8: {"v":1,"subjectHash":"<64 hex>","requestId":"…","mode":"FOREVER"|"BEFORE_REQUEST","requestedAtMs":<ms>}
export function encodeSuppression(record: SuppressionRecord): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      subjectHash: record.subjectHash,
      requestId: record.requestId,
      mode: record.mode,
      requestedAtMs: record.requestedAtMs,
    }),
  )
}

const HASH = /^[0-9a-f]{64}$/

export function decodeSuppression(bytes: Buffer): SuppressionRecord {
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch (cause) {
    throw new RagstreamError('RS_DECODE_FAILED', 'suppression record is not JSON', {
      cause,
      context: { node: 'forgotten-subjects' },
    })
  }
  const v = value as Record<string, unknown>
  if (
    typeof v !== 'object' ||
    v === null ||
    v.v !== 1 ||
    typeof v.subjectHash !== 'string' ||
    !HASH.test(v.subjectHash) ||
    typeof v.requestId !== 'string' ||
    (v.mode !== 'FOREVER' && v.mode !== 'BEFORE_REQUEST') ||
    !Number.isSafeInteger(v.requestedAtMs)
  ) {
    throw new RagstreamError('RS_DECODE_FAILED', 'suppression record has an unexpected shape (version 1 expected)', {
      context: { node: 'forgotten-subjects' },
    })
  }
  return { subjectHash: v.subjectHash, requestId: v.requestId, mode: v.mode, requestedAtMs: v.requestedAtMs as number }
}
