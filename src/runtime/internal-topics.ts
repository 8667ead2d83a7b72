/**
 * Makes the broker match the topology before anything runs: source topics must exist and be
 * co-partitioned (task p reads partition p of each), output topics must exist (RS_TOPIC_MISSING
 * otherwise, at once), and internal topics are created when missing:
 * changelogs compacted, repartition topics with the inputs' partition count, dead-letter topics with
 * the settings the topology declares.
 */
import { Admin, findErrorBy } from '@platformatic/kafka'
import { ConfigError, type Problem } from '../errors.ts'
import { Backoff, sleep } from './backoff.ts'
import type { ProcessorTopology, TopicSpec } from './task.ts'

const INTERNAL_ROLES = new Set<TopicSpec['role']>(['changelog', 'repartition', 'dead-letter'])

export interface ResolvedTopics {
  /** Partition count shared by every source topic: the number of tasks. */
  readonly partitions: number
  /** Store name → its changelog topic. */
  readonly changelogs: ReadonlyMap<string, string>
  /**
   * Every topic the runtime writes (outputs, changelogs, repartition and dead-letter topics) → its
   * `max.message.bytes` as the broker reports it (the topic's setting, else the broker's default):
   * the largest record batch the broker accepts, checked before producing.
   */
  readonly maxMessageBytes: ReadonlyMap<string, number>
}

/** The settings an internal topic is created with. */
export function internalTopicConfig(spec: TopicSpec): Record<string, string> {
  const config: Record<string, string> = { ...spec.config }
  if (spec.role === 'changelog') config['cleanup.policy'] ??= 'compact'
  return config
}

export async function ensureTopics(
  brokers: readonly string[],
  topology: ProcessorTopology,
  replicas = -1,
): Promise<ResolvedTopics> {
  const admin = new Admin({ clientId: `${topology.applicationId}-admin`, bootstrapBrokers: [...brokers] })
  try {
    const external = topology.sourceTopics.filter(
      (t) => !topology.topics.some((s) => s.name === t && INTERNAL_ROLES.has(s.role)),
    )
    // Output topics are the user's (their partition count and retention are decisions): never
    // created here, and a missing one fails the start instead of a produce retried forever.
    const outputs = topology.topics.filter((s) => s.role === 'sink').map((s) => s.name)
    const existing = await listUntilPresent(admin, [...external, ...outputs], SOURCE_SETTLE_MS)
    const problems: Problem[] = []
    for (const topic of external)
      if (!existing.has(topic))
        problems.push({ path: `/topology/sourceTopics/${topic}`, message: 'topic does not exist on the broker' })
    if (problems.length > 0) {
      throw new ConfigError(
        problems,
        'topology topics',
        'RS_TOPOLOGY_INVALID',
        'create the source topics (co-partitioned: the same partition count) before starting the processor',
      )
    }

    const missingOutputs = outputs.filter((t) => !existing.has(t))
    if (missingOutputs.length > 0) {
      throw new ConfigError(
        missingOutputs.map((t) => ({
          path: `/topology/topics/${t}`,
          message: 'output topic does not exist on the broker',
        })),
        'topology topics',
        'RS_TOPIC_MISSING',
        'create the output topics before starting the processor (`ragstream run` creates the topology output topics)',
      )
    }

    const metadata = external.length > 0 ? await admin.metadata({ topics: external }) : undefined
    const counts = new Map(external.map((t) => [t, metadata!.topics.get(t)!.partitionsCount]))
    const distinct = new Set(counts.values())
    if (distinct.size > 1) {
      throw new ConfigError(
        [...counts].map(([t, n]) => ({
          path: `/topology/sourceTopics/${t}`,
          message: `${n} partitions; source topics must be co-partitioned (same partition count)`,
        })),
        'topology topics',
        'RS_TOPOLOGY_INVALID',
      )
    }
    const declared = topology.topics
      .filter((s) => s.role === 'repartition' && s.partitions !== undefined)
      .map((s) => s.partitions!)
    const partitions = distinct.size === 1 ? [...distinct][0] : (declared[0] ?? 1)

    const changelogs = new Map<string, string>()
    const specs = [...topology.topics]
    for (const store of topology.storeNames) {
      let spec = specs.find((s) => s.role === 'changelog' && s.store === store)
      if (!spec) {
        spec = { name: `${topology.applicationId}-${store}-changelog`, role: 'changelog', config: {}, store }
        specs.push(spec)
      }
      changelogs.set(store, spec.name)
    }

    const created: string[] = []
    for (const spec of specs) {
      if (!INTERNAL_ROLES.has(spec.role) || existing.has(spec.name)) continue
      const config = internalTopicConfig(spec)
      try {
        await admin.createTopics({
          topics: [spec.name],
          partitions: spec.partitions ?? partitions,
          replicas,
          configs: Object.entries(config).map(([name, value]) => ({ name, value })),
        })
        created.push(spec.name)
      } catch (error) {
        if (!findErrorBy(error as Error, 'apiId', 'TOPIC_ALREADY_EXISTS')) throw error
      }
    }

    if (created.length > 0) await waitForLeaders(admin, created, SETTLE_MS)
    const written = specs.filter((s) => s.role === 'sink' || INTERNAL_ROLES.has(s.role)).map((s) => s.name)
    return { partitions, changelogs, maxMessageBytes: await maxMessageBytesOf(admin, written) }
  } finally {
    await admin.close().catch(() => {})
  }
}

const TOPIC_RESOURCE = 2

/**
 * `max.message.bytes` of each topic, as the broker reports it. Best effort: a topic it does not
 * describe (unknown, or a principal without DESCRIBE_CONFIGS on it under ACLs) is left out, and only
 * maxRecordBytes bounds its records.
 */
export async function maxMessageBytesOf(admin: Admin, topics: readonly string[]): Promise<Map<string, number>> {
  const limits = new Map<string, number>()
  if (topics.length === 0) return limits
  let described: Awaited<ReturnType<Admin['describeConfigs']>>
  try {
    described = await admin.describeConfigs({
      resources: [...new Set(topics)].map((resourceName) => ({
        resourceType: TOPIC_RESOURCE,
        resourceName,
        configurationKeys: ['max.message.bytes'],
      })),
    })
  } catch {
    return limits
  }
  for (const { resourceName, configs } of described) {
    const value = Number(configs.find((c) => c.name === 'max.message.bytes')?.value)
    if (Number.isSafeInteger(value) && value > 0) limits.set(resourceName, value)
  }
  return limits
}

const SETTLE_MS = 15_000
/** How long a missing source topic is looked for again: one created a moment ago may not be in the broker's metadata yet. */
export const SOURCE_SETTLE_MS = 5_000

/** The broker's topics, listed again within `timeoutMs` while any of `wanted` is missing. */
export async function listUntilPresent(
  admin: Admin,
  wanted: readonly string[],
  timeoutMs: number,
): Promise<Set<string>> {
  const deadline = Date.now() + timeoutMs
  const backoff = new Backoff({ initialMs: 100, maxMs: 1_000 })
  for (;;) {
    const existing = new Set(await admin.listTopics())
    if (wanted.every((t) => existing.has(t)) || Date.now() >= deadline) return existing
    await sleep(backoff.next())
  }
}

/**
 * Waits, within `timeoutMs`, until the broker's metadata shows every partition of the topics with a
 * leader. A topic just created is unknown to the broker's metadata for a moment (it is applied
 * asynchronously), and the stores are restored from the changelogs straight away. Best effort: the
 * restore and the clients wait for a partition that is still unsettled themselves.
 */
async function waitForLeaders(admin: Admin, topics: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  const backoff = new Backoff({ initialMs: 50, maxMs: 500 })
  while (Date.now() < deadline) {
    try {
      const metadata = await admin.metadata({ topics: [...topics], forceUpdate: true, retries: 0 })
      const led = topics.every((name) => {
        const topic = metadata.topics.get(name)
        return (
          topic !== undefined &&
          topic.partitionsCount > 0 &&
          topic.partitions.length === topic.partitionsCount &&
          topic.partitions.every((p) => p !== undefined && p.leader >= 0)
        )
      })
      if (led) return
    } catch {
      // UNKNOWN_TOPIC_OR_PARTITION or LEADER_NOT_AVAILABLE while the topics settle: ask again.
    }
    await sleep(backoff.next())
  }
}
