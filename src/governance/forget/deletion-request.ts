import { randomUUID } from 'node:crypto'
import { ConfigError, type Problem } from '../../errors.ts'
import { buildRedactor, type Redactor } from '../redact/redactor.ts'
import { isSubject } from '../subject.ts'
import type { SuppressionMode } from './suppression.ts'

/**
 * The value of a record on the governance deletions topic, field for field as
 * schemas/deletion-request.avsc (`dev.ragstream.v1.DeletionRequest`) declares it. The record's key is
 * the subject; the value is never null (a row of the forgotten-subjects table).
 */
export interface DeletionRequestValue {
  readonly request_id: string
  readonly subject: string
  readonly reason: string
  readonly requested_by: string
  readonly requested_at_ms: number
  readonly mode: SuppressionMode
}

export interface DeletionRequestInput {
  readonly subject: string
  readonly reason: string
  readonly requestedBy: string
  readonly requestedAtMs: number
  readonly mode?: SuppressionMode
  /** Default: a random UUID. */
  readonly requestId?: string
}

const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

/** Every detector on, masking: what a request's free text may not carry onto Kafka. */
let freeTextRedactor: Redactor | undefined

/**
 * Validates what `ragstream forget` was given and builds the request value; one ConfigError lists
 * every problem (`/forget/subject: …`). The message never repeats the subject.
 *
 * The request is a record on the deletions topic and, copied, on the broadcast repartition topic: the
 * free-text `reason` and `requested_by` go through the PII detectors first (masking), so a reason
 * quoting the requester's e-mail does not re-store it. Keep who asked and why in your ticketing
 * system; the request id links the two.
 */
export function buildDeletionRequest(input: DeletionRequestInput, path = '/forget'): DeletionRequestValue {
  const problems: Problem[] = []
  if (!isSubject(input.subject))
    problems.push({ path: `${path}/subject`, message: 'required: <type>:<id>, e.g. customer:42' })
  if (typeof input.reason !== 'string' || input.reason.trim() === '' || input.reason.length > 500)
    problems.push({ path: `${path}/reason`, message: 'required: 1–500 characters' })
  if (typeof input.requestedBy !== 'string' || input.requestedBy.trim() === '' || input.requestedBy.length > 200)
    problems.push({ path: `${path}/requestedBy`, message: 'required: 1–200 characters' })
  if (!Number.isSafeInteger(input.requestedAtMs) || input.requestedAtMs <= 0)
    problems.push({ path: `${path}/requestedAtMs`, message: 'must be a positive integer (ms since the epoch)' })
  const mode = input.mode ?? 'FOREVER'
  if (mode !== 'FOREVER' && mode !== 'BEFORE_REQUEST')
    problems.push({ path: `${path}/mode`, message: 'must be FOREVER or BEFORE_REQUEST' })
  if (input.requestId !== undefined && !REQUEST_ID.test(input.requestId))
    problems.push({ path: `${path}/requestId`, message: 'must be 1–128 characters of letters, digits, ., _, : and -' })
  if (problems.length > 0) throw new ConfigError(problems, 'deletion request')
  return {
    request_id: input.requestId ?? randomUUID(),
    subject: input.subject,
    reason: redactFreeText(input.reason),
    requested_by: redactFreeText(input.requestedBy),
    requested_at_ms: input.requestedAtMs,
    mode,
  }
}

function redactFreeText(text: string): string {
  freeTextRedactor ??= buildRedactor({}, {})
  return freeTextRedactor.redactText(text, {})
}
