import { quotesWithheld, RagstreamError } from '../errors.ts'
import type { EncodedRecord } from './change-event.ts'

/**
 * RS_DECODE_FAILED for one record: the message and context name the topic, partition, offset and
 * what is wrong, so the runtime's dead-letter handler has everything it needs for the headers.
 */
export function decodeFailed(record: EncodedRecord, reason: string, cause?: unknown): RagstreamError {
  // The cause's own message may quote the record (a JSON parser's does): its quoted parts are withheld.
  const detail = cause instanceof Error ? `: ${quotesWithheld(cause.message)}` : ''
  return new RagstreamError(
    'RS_DECODE_FAILED',
    `cannot decode ${record.topic}[${record.partition}]@${record.offset}: ${reason}${detail}`,
    {
      context: { topic: record.topic, partition: record.partition, offset: record.offset, reason },
      cause,
    },
  )
}
