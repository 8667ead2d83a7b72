/**
 * Who is in a consumer group right now and what each member owns: `promote --drop-old` asks before
 * dropping a version, `status` lists the tasks per member of the processor's and the sink's group.
 */
import type { Admin } from '@platformatic/kafka'

export interface GroupMemberTasks {
  readonly memberId: string
  /** The static member's `group.instance.id` (ragstream's instance id); null for a dynamic member. */
  readonly instanceId: string | null
  readonly clientId: string
  readonly host: string
  /**
   * Partitions assigned per topic, as the group leader's assignor decided (empty while the group
   * rebalances). For a processor, task p is partition p of every source and repartition topic.
   */
  readonly assignments: readonly { readonly topic: string; readonly partitions: readonly number[] }[]
  /** The partition numbers over every assigned topic: the processor's tasks, the sink's partitions. */
  readonly tasks: readonly number[]
}

export interface GroupState {
  readonly group: string
  /** Kafka's group state (Stable, Empty, Dead, PreparingRebalance, …). */
  readonly state: string
  readonly members: readonly GroupMemberTasks[]
}

export async function groupStates(admin: Admin, groups: readonly string[]): Promise<GroupState[]> {
  if (groups.length === 0) return []
  const described = await admin.describeGroups({ groups: [...groups] })
  return groups.map((group) => {
    const g = described.get(group)
    const members = g
      ? [...g.members.values()].map((m) => {
          const assignments = [...(m.assignments?.values() ?? [])]
            .map((a) => ({ topic: a.topic, partitions: [...a.partitions].sort((x, y) => x - y) }))
            .sort((a, b) => a.topic.localeCompare(b.topic))
          return {
            memberId: m.id,
            instanceId: m.groupInstanceId ?? null,
            clientId: m.clientId,
            host: m.clientHost,
            assignments,
            tasks: [...new Set(assignments.flatMap((a) => a.partitions))].sort((x, y) => x - y),
          }
        })
      : []
    // A stable order for people and tests: by instance id, then member id.
    members.sort((a, b) => (a.instanceId ?? a.memberId).localeCompare(b.instanceId ?? b.memberId))
    return { group, state: g?.state ?? 'Dead', members }
  })
}
