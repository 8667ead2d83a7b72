/**
 * Group assignment by task, not by topic-partition: task p (partition p of *every* source topic,
 * inputs and internal repartition topics alike) goes to exactly one member, so one owner per key
 * holds across all of a topology's inputs. The client's default round-robin would spread partition p
 * of two topics over two members.
 */
import type { GroupPartitionsAssigner } from '@platformatic/kafka'

export const COPARTITIONED_PROTOCOL = { name: 'ragstream-copartitioned', version: 1 } as const

export const copartitionedAssigner: GroupPartitionsAssigner = (_current, members, topics, metadata) => {
  const memberIds = [...members.keys()].sort()
  const result = memberIds.map((memberId) => ({
    memberId,
    assignments: new Map<string, { topic: string; partitions: number[] }>(),
  }))
  if (result.length === 0) return result
  for (const topic of [...topics].sort()) {
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0
    for (let p = 0; p < count; p++) {
      const member = result[p % result.length]
      const entry = member.assignments.get(topic) ?? { topic, partitions: [] }
      entry.partitions.push(p)
      member.assignments.set(topic, entry)
    }
  }
  return result
}
