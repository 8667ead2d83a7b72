/**
 * Consumer lag as Kafka defines it: per partition, the end of the log (read_committed: the last
 * stable offset) minus the group's committed offset. A partition the group never committed counts
 * from the log start, so a topology that has not started yet shows its whole backlog.
 */
import type { Admin } from '@platformatic/kafka'

const READ_COMMITTED = 1
const EARLIEST = -2n
const LATEST = -1n

export interface PartitionLag {
  readonly topic: string
  readonly partition: number
  /** Last stable offset (read_committed end). */
  readonly end: string
  /** The group's committed offset (next offset to read); null when the group never committed this partition. */
  readonly committed: string | null
  readonly lag: number
}

async function partitionCounts(admin: Admin, topics: readonly string[]): Promise<Map<string, number>> {
  const existing = new Set(await admin.listTopics())
  const known = topics.filter((t) => existing.has(t))
  const counts = new Map<string, number>()
  if (known.length === 0) return counts
  const metadata = await admin.metadata({ topics: known })
  for (const t of known) counts.set(t, metadata.topics.get(t)?.partitionsCount ?? 0)
  return counts
}

async function offsets(admin: Admin, counts: Map<string, number>, timestamp: bigint): Promise<Map<string, bigint>> {
  const topics = [...counts]
    .filter(([, n]) => n > 0)
    .map(([name, n]) => ({
      name,
      partitions: Array.from({ length: n }, (_, partitionIndex) => ({ partitionIndex, timestamp })),
    }))
  const out = new Map<string, bigint>()
  if (topics.length === 0) return out
  for (const t of await admin.listOffsets({ topics, isolationLevel: READ_COMMITTED }))
    for (const p of t.partitions) out.set(`${t.name}:${p.partitionIndex}`, p.offset)
  return out
}

/** Lag of `groupId` on every partition of `topics` (topics that do not exist are left out). */
export async function consumerLag(admin: Admin, groupId: string, topics: readonly string[]): Promise<PartitionLag[]> {
  const counts = await partitionCounts(admin, topics)
  const [ends, starts, groups] = await Promise.all([
    offsets(admin, counts, LATEST),
    offsets(admin, counts, EARLIEST),
    admin.listConsumerGroupOffsets({ groups: [groupId] }),
  ])
  const committed = new Map<string, bigint>()
  for (const t of groups[0]?.topics ?? [])
    for (const p of t.partitions)
      if (p.committedOffset >= 0n) committed.set(`${t.name}:${p.partitionIndex}`, p.committedOffset)
  const out: PartitionLag[] = []
  for (const [topic, n] of counts) {
    for (let partition = 0; partition < n; partition++) {
      const key = `${topic}:${partition}`
      const end = ends.get(key) ?? 0n
      const position = committed.get(key) ?? starts.get(key) ?? 0n
      out.push({
        topic,
        partition,
        end: end.toString(),
        committed: committed.has(key) ? position.toString() : null,
        lag: Math.max(0, Number(end - position)),
      })
    }
  }
  return out
}

export function totalLag(lags: readonly PartitionLag[]): number {
  return lags.reduce((sum, l) => sum + l.lag, 0)
}

/** For `replay --from <timestamp>`: the first offset at or after `timestampMs` per partition (the end when none). */
export async function offsetsForTimestamp(
  admin: Admin,
  topics: readonly string[],
  timestampMs: number,
): Promise<Map<string, bigint>> {
  const counts = await partitionCounts(admin, topics)
  const [at, ends] = await Promise.all([offsets(admin, counts, BigInt(timestampMs)), offsets(admin, counts, LATEST)])
  const out = new Map<string, bigint>()
  for (const [key, end] of ends) {
    const found = at.get(key)
    out.set(key, found === undefined || found < 0n ? end : found)
  }
  return out
}
