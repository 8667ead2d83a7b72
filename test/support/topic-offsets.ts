// Offsets of the real broker for end-to-end tests: read_committed end offsets, reading topics to
// their end, and waiting until a consumer group has caught up with its inputs.
import assert from 'node:assert/strict'
import { Consumer, type Admin } from '@platformatic/kafka'
import { PartitionReader } from '../../src/runtime/partition-reader.ts'
import type { RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { SourceRecord } from '../../src/runtime/task.ts'
import { endpoints, uniqueName } from './stack.ts'

const READ_COMMITTED = 1

type Offsets = Map<string, bigint>
const tp = (topic: string, partition: number): string => `${topic}:${partition}`

/** read_committed end offsets (the last stable offset) of every partition of `topics`. */
export async function endOffsets(admin: Admin, partitions: number, topics: readonly string[]): Promise<Offsets> {
  const listed = await admin.listOffsets({
    topics: topics.map((name) => ({
      name,
      partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp: -1n })),
    })),
    isolationLevel: READ_COMMITTED,
  })
  const out: Offsets = new Map()
  for (const t of listed) for (const p of t.partitions) out.set(tp(t.name, p.partitionIndex), p.offset)
  return out
}

/** Every committed record of `topics`, read from offset 0 up to their read_committed end offsets. */
export async function readToEnd(admin: Admin, partitions: number, topics: readonly string[]): Promise<SourceRecord[]> {
  const ends = await endOffsets(admin, partitions, topics)
  const consumer = new Consumer({
    groupId: uniqueName('e2e-read'),
    clientId: uniqueName('e2e-read'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
  })
  const reader = new PartitionReader(consumer, { fetchMaxBytes: 16 * 1024 * 1024, fetchMaxWaitMs: 100 })
  const records: SourceRecord[] = []
  try {
    await reader.assign(
      topics.flatMap((topic) =>
        Array.from({ length: partitions }, (_, partition) => ({ topic, partition, offset: 0n })),
      ),
    )
    const deadline = Date.now() + 20_000
    const behind = () =>
      [...ends].filter(
        ([key, end]) =>
          (reader.position(key.slice(0, key.lastIndexOf(':')), Number(key.slice(key.lastIndexOf(':') + 1))) ?? 0n) <
          end,
      )
    while (behind().length > 0) {
      assert.ok(
        Date.now() < deadline,
        `reading ${topics.join(', ')} timed out; behind: ${behind()
          .map(([k]) => k)
          .join(', ')}`,
      )
      records.push(...(await reader.nextBatch(100_000, 64 * 1024 * 1024)).records)
    }
  } finally {
    await consumer.close(true)
  }
  return records
}

/**
 * Caught up: the group's committed offsets reach the end of every source topic and every repartition
 * topic, twice in a row with the same end offsets. A repartition topic is transactional, so its last
 * entry is a commit marker the consumer need not pass: committed ≥ end − 1 there.
 */
export async function waitCaughtUp(
  admin: Admin,
  partitions: number,
  groupId: string,
  sources: readonly string[],
  repartitions: readonly string[],
  timeoutMs: number,
  events: RuntimeEvent[],
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let previous = ''
  for (;;) {
    // The runtime creates its repartition topics when it starts; until the broker's metadata shows
    // them (asynchronous, slower on a loaded machine) they are not caught up, not an error.
    let ends: Offsets
    try {
      ends = await endOffsets(admin, partitions, [...sources, ...repartitions])
    } catch (error) {
      if (!/^Unknown topic /.test((error as Error).message)) throw error
      assert.ok(Date.now() < deadline, `not caught up after ${timeoutMs} ms: ${(error as Error).message}`)
      await new Promise((resolve) => setTimeout(resolve, 300))
      continue
    }
    const [group] = await admin.listConsumerGroupOffsets({ groups: [groupId], requireStable: true })
    const committed: Offsets = new Map()
    for (const t of group?.topics ?? [])
      for (const p of t.partitions) committed.set(tp(t.name, p.partitionIndex), p.committedOffset)
    const lagging = [...ends].filter(([key, end]) => {
      const slack = sources.some((s) => key.startsWith(`${s}:`)) || end === 0n ? 0n : 1n
      return (committed.get(key) ?? 0n) < end - slack
    })
    const snapshot = JSON.stringify([...ends].map(([k, v]) => [k, String(v)]))
    if (lagging.length === 0 && snapshot === previous) return
    previous = lagging.length === 0 ? snapshot : ''
    assert.ok(
      Date.now() < deadline,
      `not caught up after ${timeoutMs} ms; lagging: ${lagging.map(([k, end]) => `${k} ${committed.get(k) ?? '-'}/${end}`).join(', ')}; last events: ${JSON.stringify(events.slice(-3), (_, v) => (typeof v === 'bigint' ? String(v) : v))}`,
    )
    await new Promise((resolve) => setTimeout(resolve, 300))
  }
}
