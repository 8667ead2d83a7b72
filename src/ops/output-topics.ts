/**
 * `ragstream run` creates, or verifies, every topic the processor writes before it starts: its output
 * topics (an app's chunk topic, which is also where audit events go) and an app's governance deletions
 * topic (read by the processor, written by `ragstream forget`). A missing one is created with the
 * source topics' partition count; the chunk and deletions topics compacted (the chunk topic is the
 * chunk table's changelog). When the broker refuses (no auto-creation, no CREATE permission) the run
 * fails at once, naming the topic and how to create it — instead of a processor retrying forever on
 * "unknown topic".
 */
import { Admin } from '@platformatic/kafka'
import { RagstreamError } from '../errors.ts'
import { listUntilPresent, SOURCE_SETTLE_MS } from '../runtime/internal-topics.ts'
import type { Topology } from '../topology/topology.ts'

/** How long a topic this command created may take to appear in the broker's listing. */
const CREATED_SETTLE_MS = 30_000

export interface WrittenTopic {
  readonly name: string
  readonly compact: boolean
  readonly created: boolean
}

/** The topics a topology writes (its `to(...)` outputs) plus `extra` (e.g. an app's deletions topic). */
export async function ensureWrittenTopics(
  topology: Pick<Topology, 'compile'>,
  brokers: readonly string[],
  o: { readonly compact?: readonly string[]; readonly extra?: readonly string[]; readonly clientId?: string } = {},
): Promise<WrittenTopic[]> {
  const probe = topology.compile({ partitions: 1 })
  const internal = new Set(probe.topics.filter((t) => t.role !== 'source' && t.role !== 'sink').map((t) => t.name))
  const written = [
    ...new Set([...probe.topics.filter((t) => t.role === 'sink').map((t) => t.name), ...(o.extra ?? [])]),
  ]
  const sources = probe.sourceTopics.filter((t) => !internal.has(t) && !written.includes(t))
  const compact = new Set(o.compact ?? [])
  const admin = new Admin({ clientId: o.clientId ?? `${probe.applicationId}-topics`, bootstrapBrokers: [...brokers] })
  try {
    // a source created a moment ago may not be in the broker's metadata yet: wait for it briefly
    const existing = await listUntilPresent(admin, sources, SOURCE_SETTLE_MS)
    const known = sources.filter((t) => existing.has(t))
    const metadata = known.length > 0 ? await admin.metadata({ topics: known }) : undefined
    const partitions = Math.max(1, ...known.map((t) => metadata?.topics.get(t)?.partitionsCount ?? 1))
    const out: WrittenTopic[] = []
    for (const name of written) {
      if (existing.has(name)) {
        out.push({ name, compact: compact.has(name), created: false })
        continue
      }
      try {
        await admin.createTopics({
          topics: [name],
          partitions,
          replicas: -1,
          configs: compact.has(name) ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
        })
      } catch (error) {
        const text = `${(error as Error).message} ${JSON.stringify((error as { errors?: unknown }).errors ?? '')}`
        if (!/already exists/i.test(text))
          throw new RagstreamError(
            'RS_TOPIC_MISSING',
            `topic ${name} does not exist and could not be created: ${(error as Error).message}`,
            {
              context: { topic: name, path: `/topology/outputs/${name}` },
              hint: `create it before starting (${partitions} partitions${compact.has(name) ? ', cleanup.policy=compact' : ''}), e.g. kafka-topics.sh --create --topic ${name} --partitions ${partitions}${compact.has(name) ? ' --config cleanup.policy=compact' : ''}, or grant this principal CREATE on it`,
              cause: error,
            },
          )
      }
      out.push({ name, compact: compact.has(name), created: true })
    }
    // What this created is waited for until the broker lists it (its metadata is applied asynchronously,
    // seconds later on a busy broker): the processor that starts next finds its deletions topic.
    const created = out.filter((t) => t.created).map((t) => t.name)
    if (created.length > 0) {
      const listed = await listUntilPresent(admin, created, CREATED_SETTLE_MS)
      const absent = created.filter((t) => !listed.has(t))
      if (absent.length > 0)
        throw new RagstreamError(
          'RS_TOPIC_MISSING',
          `topic ${absent.join(', ')} was created but the broker did not list it within ${CREATED_SETTLE_MS / 1000} s`,
          {
            context: { topic: absent[0], path: `/topology/outputs/${absent[0]}` },
            hint: 'the broker is slow to apply metadata (check its controller log); run the command again',
          },
        )
    }
    return out
  } finally {
    await admin.close().catch(() => {})
  }
}
