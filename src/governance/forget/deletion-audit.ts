import { auditEvent, type AuditEventValue } from '../audit.ts'
import { hashSubject } from '../subject.ts'
import type { DeletionRequestValue } from './deletion-request.ts'

/** DELETION_REQUESTED: written when `ragstream forget` produces the request. One per request id. */
export function deletionRequestedAudit(request: DeletionRequestValue, topology: string): AuditEventValue {
  return auditEvent({
    kind: 'DELETION_REQUESTED',
    topology,
    requestId: request.request_id,
    subjectHash: hashSubject(request.subject),
    // The reason is the requester's free text and may name the person; it stays on the governance topic.
    reason: request.mode,
    atMs: request.requested_at_ms,
    identity: request.request_id,
  })
}

export interface DeletionApplied {
  readonly topology: string
  readonly topologyVersion?: string
  readonly requestId: string
  readonly subjectHash: string
  /** Store partition (task) that applied the request: each owner writes its own event. */
  readonly partition: number
  readonly chunksTombstoned: number
  /** Keys removed per store (entity, metadata, chunk-set, reverse index, embedding cache). */
  readonly storeKeysRemoved: Readonly<Record<string, number>>
  readonly atMs: number
}

/**
 * DELETION_APPLIED: written by each processor task that applied the request to its partition, in
 * the same transaction as the tombstones. One per (request, topology version, partition).
 */
export function deletionAppliedAudit(applied: DeletionApplied): AuditEventValue {
  const counts: Record<string, number> = { chunks_tombstoned: applied.chunksTombstoned, partition: applied.partition }
  for (const [store, n] of Object.entries(applied.storeKeysRemoved)) counts[`store_keys_removed:${store}`] = n
  return auditEvent({
    kind: 'DELETION_APPLIED',
    topology: applied.topology,
    topologyVersion: applied.topologyVersion ?? null,
    requestId: applied.requestId,
    subjectHash: applied.subjectHash,
    counts,
    atMs: applied.atMs,
    identity: `${applied.requestId}\u0000${applied.partition}`,
  })
}
