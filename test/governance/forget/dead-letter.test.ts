import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  DEAD_LETTER_TOPIC_CONFIG,
  deadLetterExpiryMs,
  deadLetterRetentionOf,
} from '../../../src/governance/forget/dead-letter.ts'

test('dead letters written before a request expire within segment.ms + retention.ms + the check interval', () => {
  const retention = deadLetterRetentionOf(DEAD_LETTER_TOPIC_CONFIG)
  assert.deepEqual(retention, { retentionMs: 7 * 86_400_000, segmentMs: 86_400_000 })
  assert.equal(deadLetterExpiryMs(0, retention!), 8 * 86_400_000 + 300_000)
})

test('a dead-letter topic without time-bounded deletion has no bound', () => {
  assert.equal(
    deadLetterRetentionOf({ 'cleanup.policy': 'compact', 'retention.ms': '1', 'segment.ms': '1' }),
    undefined,
  )
  assert.equal(
    deadLetterRetentionOf({ 'cleanup.policy': 'delete', 'retention.ms': '-1', 'segment.ms': '1' }),
    undefined,
  )
})
