/**
 * Deletion requests as govern reads them: decoded per batch (JSON by default, Avro with
 * `deletionRequestCodec`) and checked, so a malformed request is that record's dead letter.
 */
import type { DeletionRequestValue } from '../../governance/forget/deletion-request.ts'
import { isSubject } from '../../governance/subject.ts'
import { RagstreamError } from '../../errors.ts'
import { decodeJson } from '../../topology/json.ts'
import type { DeletionRequestDecoder } from './options.ts'

/** The default decoder: JSON values of schemas/deletion-request.avsc's shape. */
export const jsonRequests: DeletionRequestDecoder = {
  decode: (value) => (value === null ? null : (decodeJson(value) as DeletionRequestValue)),
}

/** The request, with `requested_at_ms` as a number; throws RS_DECODE_FAILED (naming no value) when it lacks a field. */
export function checkRequest(request: unknown): DeletionRequestValue {
  const r = request as Record<string, unknown>
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.request_id !== 'string' ||
    r.request_id === '' ||
    !isSubject(r.subject) ||
    !Number.isSafeInteger(Number(r.requested_at_ms)) ||
    (r.mode !== 'FOREVER' && r.mode !== 'BEFORE_REQUEST')
  ) {
    throw new RagstreamError(
      'RS_DECODE_FAILED',
      'a deletion request needs request_id, a subject <type>:<id>, requested_at_ms and mode',
      { context: { node: 'govern' } },
    )
  }
  return { ...(r as unknown as DeletionRequestValue), requested_at_ms: Number(r.requested_at_ms) }
}
