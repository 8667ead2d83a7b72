/**
 * The dead-letter policy for forgotten subjects (docs/governance.md, "Dead letters"). Kafka cannot
 * delete one record from a topic, so dead letters are not purged individually; instead:
 *   1. Before a record is dead-lettered, its subjects (when known) are checked against the
 *      forgotten-subjects table: a suppressed record is not written to the dead-letter topic.
 *   2. Re-driving dead letters passes every record through the same suppression check.
 *   3. Whatever was dead-lettered before the request expires by retention: the dead-letter topic is
 *      `cleanup.policy=delete` with bounded `retention.ms` and `segment.ms`, so the bound below holds.
 */

/** Topic configs the dead-letter topic is created with (the bound below assumes them). */
export const DEAD_LETTER_TOPIC_CONFIG = {
  'cleanup.policy': 'delete',
  'retention.ms': String(7 * 24 * 3600 * 1000),
  'segment.ms': String(24 * 3600 * 1000),
} as const

/** Kafka's default `log.retention.check.interval.ms`. */
export const RETENTION_CHECK_INTERVAL_MS = 5 * 60 * 1000

export interface DeadLetterRetention {
  readonly retentionMs: number
  readonly segmentMs: number
  readonly checkIntervalMs?: number
}

/**
 * The time by which every dead letter written before `requestedAtMs` is deleted by the broker. A
 * segment is deleted once its newest record is older than retention.ms; a segment stays open for at
 * most segment.ms; the cleaner runs every check interval. So a record written just before the
 * request lives at most segment.ms + retention.ms + check interval.
 */
export function deadLetterExpiryMs(requestedAtMs: number, retention: DeadLetterRetention): number {
  return (
    requestedAtMs +
    retention.segmentMs +
    retention.retentionMs +
    (retention.checkIntervalMs ?? RETENTION_CHECK_INTERVAL_MS)
  )
}

/** Reads the bound from a dead-letter topic's configs (as the runtime creates or describes it). */
export function deadLetterRetentionOf(config: Readonly<Record<string, string>>): DeadLetterRetention | undefined {
  const retentionMs = Number(config['retention.ms'])
  const segmentMs = Number(config['segment.ms'])
  if (config['cleanup.policy'] !== 'delete' || !(retentionMs > 0) || !(segmentMs > 0)) return undefined
  return { retentionMs, segmentMs }
}
