/** Who is in a consumer group right now: `promote --drop-old` and `status` ask before acting or reporting. */
import type { Admin } from '@platformatic/kafka'

export interface GroupState {
  readonly group: string
  /** Kafka's group state (Stable, Empty, Dead, PreparingRebalance, …). */
  readonly state: string
  /** Client ids and hosts of the members. */
  readonly members: readonly { readonly clientId: string; readonly host: string }[]
}

export async function groupStates(admin: Admin, groups: readonly string[]): Promise<GroupState[]> {
  if (groups.length === 0) return []
  const described = await admin.describeGroups({ groups: [...groups] })
  return groups.map((group) => {
    const g = described.get(group)
    return {
      group,
      state: g?.state ?? 'Dead',
      members: g ? [...g.members.values()].map((m) => ({ clientId: m.clientId, host: m.clientHost })) : [],
    }
  })
}
