import { createHash } from 'node:crypto'

/**
 * The kinds ragstream writes: the symbols of `AuditKind` in schemas/audit-event.avsc, in order, but
 * {@link AUDIT_KIND_DEFAULT} (a test keeps the two in step). New kinds are appended to the schema.
 */
export const AUDIT_KINDS = [
  'DELETION_REQUESTED',
  'DELETION_APPLIED',
  'DELETION_CONFIRMED',
  'DENIED',
  'RECLASSIFIED',
  'REDACTED',
  'TRUNCATED',
  'SNAPSHOT_RESET',
] as const
export type AuditKind = (typeof AUDIT_KINDS)[number]

/**
 * The enum's default: what a reader whose schema predates a kind reads it as (Avro schema
 * resolution), so adding a kind never breaks a consumer that decodes with its own reader schema.
 * Never written.
 */
export const AUDIT_KIND_DEFAULT = 'UNKNOWN'

/**
 * The value of one governance audit record, field for field as schemas/audit-event.avsc
 * (`dev.ragstream.v1.AuditEvent`) declares it, ready for the Avro encoder: ids, hashes and counts,
 * never raw PII or content.
 */
export interface AuditEventValue {
  readonly event_id: string
  readonly kind: AuditKind
  readonly topology: string
  readonly topology_version: string | null
  readonly request_id: string | null
  /** sha256 hex of the subject (see hashSubject), never the subject. */
  readonly subject_hash: string | null
  /** sha256 hex of the entity key. */
  readonly entity_key_hash: string | null
  readonly reason: string | null
  readonly counts: Readonly<Record<string, number>>
  readonly at_ms: number
}

export interface AuditEventInput {
  readonly kind: AuditKind
  readonly topology: string
  readonly topologyVersion?: string | null
  readonly requestId?: string | null
  readonly subjectHash?: string | null
  readonly entityKeyHash?: string | null
  readonly reason?: string | null
  readonly counts?: Readonly<Record<string, number>>
  readonly atMs: number
  /**
   * What makes this event unique (e.g. the source position or the request id). The event id is a
   * hash of it and the other ids, so re-processing the same input after an aborted transaction yields
   * the same event id and the sink can write it idempotently.
   */
  readonly identity: string
}

/** Builds an audit event value with a deterministic `event_id`. */
export function auditEvent(input: AuditEventInput): AuditEventValue {
  const event_id = createHash('sha256')
    .update(
      [
        input.kind,
        input.topology,
        input.topologyVersion ?? '',
        input.requestId ?? '',
        input.subjectHash ?? '',
        input.entityKeyHash ?? '',
        input.identity,
      ].join('\u0000'),
    )
    .digest('hex')
    .slice(0, 32)
  return {
    event_id,
    kind: input.kind,
    topology: input.topology,
    topology_version: input.topologyVersion ?? null,
    request_id: input.requestId ?? null,
    subject_hash: input.subjectHash ?? null,
    entity_key_hash: input.entityKeyHash ?? null,
    reason: input.reason ?? null,
    counts: input.counts ?? {},
    at_ms: input.atMs,
  }
}
