/**
 * The headers of a dead-letter record, written by the topology (records that failed to decode or
 * broke a rule: key and value are the failed record's own bytes) and by the runtime (outputs too
 * large to produce: value null, a bounded excerpt in a header). Consumers of the dead-letter topic
 * read these names; they never change meaning.
 */
export const DEAD_LETTER_HEADERS = {
  code: 'ragstream.error.code',
  message: 'ragstream.error.message',
  /** What the user can do about it (runtime dead letters). */
  hint: 'ragstream.error.hint',
  topic: 'ragstream.source.topic',
  partition: 'ragstream.source.partition',
  offset: 'ragstream.source.offset',
  /** Source record timestamp, epoch ms. */
  timestamp: 'ragstream.source.timestamp',
  node: 'ragstream.node',
  /** When processing failed: the batch clock, epoch ms. */
  failedAt: 'ragstream.failed-at',
  application: 'ragstream.application',
  /** Output too large: the topic it was for, its size in bytes, and the first bytes of its value. */
  outputTopic: 'ragstream.output.topic',
  outputBytes: 'ragstream.output.bytes',
  excerpt: 'ragstream.output.excerpt',
} as const
