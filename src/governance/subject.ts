import { hash } from 'node:crypto'

/**
 * A data subject: `<type>:<id>`, e.g. `customer:42`, `employee:e-1007`. The type starts with a letter;
 * the id is 1–200 non-space characters.
 */
export const SUBJECT_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,62}:\S{1,200}$/

export function isSubject(value: unknown): value is string {
  return typeof value === 'string' && SUBJECT_PATTERN.test(value)
}

/**
 * The form a subject takes in audit records, receipts and the forgotten-subjects store: lower-case
 * hex sha256 of its UTF-8 bytes. Anyone holding the subject can recompute it to find its audit trail;
 * the audit trail itself never carries the subject. Note that a hash of a short id can be found by
 * enumerating ids, so it hides subjects from casual readers, not from someone who can guess them
 * (see docs/governance.md).
 */
export function hashSubject(subject: string): string {
  // One-shot: the same digest as createHash(…).update(…).digest('hex'), without a Hash object per call.
  return hash('sha256', subject, 'hex')
}

/** sha256 hex of any id (entity keys in audit events). */
export function hashId(id: string): string {
  return hash('sha256', id, 'hex')
}
