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
  /**
   * The external source record whose change led here (its origin, src/runtime/origin.ts): for a
   * record of a source topic, the record itself; for one of an internal topic (a join's response, an
   * aggregate's group-by change), the source record that caused it.
   */
  topic: 'ragstream.source.topic',
  partition: 'ragstream.source.partition',
  offset: 'ragstream.source.offset',
  /** Source record timestamp, epoch ms. */
  timestamp: 'ragstream.source.timestamp',
  /** The source record's key bytes, when the failed record is an internal one (its own key is the dead letter's key). */
  sourceKey: 'ragstream.source.key',
  /** When the failed record is an internal one: its own topic, partition and offset. */
  inputTopic: 'ragstream.input.topic',
  inputPartition: 'ragstream.input.partition',
  inputOffset: 'ragstream.input.offset',
  node: 'ragstream.node',
  /** When processing failed: the batch clock, epoch ms. */
  failedAt: 'ragstream.failed-at',
  application: 'ragstream.application',
  /** Output too large: the topic it was for, its size in bytes, and the first bytes of its value. */
  outputTopic: 'ragstream.output.topic',
  outputBytes: 'ragstream.output.bytes',
  excerpt: 'ragstream.output.excerpt',
} as const
