/**
 * Compiles a DSL topology with the partition counts the broker reports: tasks = the source topics'
 * partitions, and each existing sink topic's own count. Source topics must exist; one created a
 * moment ago is waited for briefly (see `listUntilPresent`).
 */
import { Admin } from '@platformatic/kafka'
import { ConfigError } from '../errors.ts'
import type { Topology } from '../topology/topology.ts'
import { listUntilPresent, SOURCE_SETTLE_MS } from './internal-topics.ts'
import type { ProcessorTopology } from './task.ts'

/** `role` names the admin client: `<applicationId>-<role>`. */
export async function compileForBroker(
  topology: Pick<Topology, 'compile'>,
  brokers: readonly string[],
  role: string,
): Promise<ProcessorTopology> {
  // Compile once to learn the topic names, then again with the broker's partition counts.
  const probe = topology.compile({ partitions: 1 })
  const sinks = probe.topics.filter((t) => t.role === 'sink').map((t) => t.name)
  const external = probe.sourceTopics.filter((t) => !probe.topics.some((s) => s.name === t && s.role === 'repartition'))
  const admin = new Admin({ clientId: `${probe.applicationId}-${role}`, bootstrapBrokers: [...brokers] })
  try {
    const existing = await listUntilPresent(admin, external, SOURCE_SETTLE_MS)
    const missing = external.filter((t) => !existing.has(t))
    if (missing.length > 0) {
      throw new ConfigError(
        missing.map((t) => ({ path: `/topology/sources/${t}`, message: 'topic does not exist on the broker' })),
        'topology topics',
        'RS_TOPOLOGY_INVALID',
        'create the source topics (co-partitioned: the same partition count) before starting the processor',
      )
    }
    const known = [...new Set([...probe.sourceTopics, ...sinks])].filter((t) => existing.has(t))
    const metadata = known.length > 0 ? await admin.metadata({ topics: known }) : undefined
    const partitions = Math.max(1, ...probe.sourceTopics.map((t) => metadata?.topics.get(t)?.partitionsCount ?? 0))
    const sinkPartitions: Record<string, number> = {}
    for (const t of sinks) {
      const n = metadata?.topics.get(t)?.partitionsCount
      if (n !== undefined) sinkPartitions[t] = n
    }
    return topology.compile({ partitions, sinkPartitions })
  } finally {
    await admin.close().catch(() => {})
  }
}
