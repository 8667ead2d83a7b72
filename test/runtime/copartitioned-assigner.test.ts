// Task-based group assignment: partition p of every source topic goes to the same member.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ClusterMetadata, ExtendedGroupProtocolSubscription } from '@platformatic/kafka'
import { copartitionedAssigner } from '../../src/runtime/copartitioned-assigner.ts'

function metadata(topics: Record<string, number>): ClusterMetadata {
  return {
    id: 'c',
    brokers: new Map(),
    controllerId: 1,
    lastUpdate: 0,
    topics: new Map(
      Object.entries(topics).map(([name, n]) => [
        name,
        { id: name, partitionsCount: n, lastUpdate: 0, partitions: [] },
      ]),
    ),
  }
}

test('copartitioned assigner: each task (partition number) has one owner across all source topics, spread evenly', () => {
  const members = new Map<string, ExtendedGroupProtocolSubscription>([
    ['m-b', { memberId: 'm-b', version: 1 }],
    ['m-a', { memberId: 'm-a', version: 1 }],
  ])
  const result = copartitionedAssigner(
    'm-a',
    members,
    new Set(['tickets', 'app-join-repartition']),
    metadata({ tickets: 4, 'app-join-repartition': 4 }),
  )
  const owners = new Map<number, Set<string>>()
  for (const { memberId, assignments } of result) {
    for (const { partitions } of assignments.values())
      for (const p of partitions) owners.set(p, (owners.get(p) ?? new Set()).add(memberId))
  }
  assert.deepEqual([...owners.keys()].sort(), [0, 1, 2, 3])
  for (const set of owners.values()) assert.equal(set.size, 1)
  const a = result.find((m) => m.memberId === 'm-a')!
  assert.deepEqual(a.assignments.get('tickets')?.partitions, [0, 2])
  assert.deepEqual(a.assignments.get('app-join-repartition')?.partitions, [0, 2])
})
