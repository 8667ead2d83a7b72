/**
 * A deployment is one version of a reference topology, with every name derived in one place:
 *
 *   version v1 (the default exports' names)     version vN
 *   applicationId  <name>                        <name>-vN          (consumer group, transactional ids, internal topics, Redis keys)
 *   chunk topic    rag.chunks.<name>             rag.chunks.<name>.vN
 *   SQL            ragstream."chunks_<sql>_v1"   ragstream."chunks_<sql>_vN", view rag."<sql>" → the active one
 *   sink group     ragstream-sink.<sql>.v1       ragstream-sink.<sql>.vN
 *
 * so `replay`, `promote` and `status` agree on what "support-copilot@v2" is without a registry.
 */
import { Redis } from 'ioredis'
import { RagServices } from '../config/rag-services.ts'
import { embeddingCacheBoundFromEnv } from '../embedding/cache.ts'
import type { ProviderEmbeddingConfig } from '../embedding/config.ts'
import { redactUrl, type Endpoints } from '../config/endpoints.ts'
import type { RagstreamConfig } from '../config/file.ts'
import { ConfigError } from '../errors.ts'
import { compileForBroker as compileForKafka } from '../runtime/compile-for-broker.ts'
import type { ProcessorTopology } from '../runtime/task.ts'
import { resolveSinkConfig, type SinkConfig } from '../sink/config.ts'
import type { Topology } from '../topology/topology.ts'
import { knowledgeBase } from '../../topologies/knowledge-base.ts'
import { SUPPORT_DELETIONS_TOPIC, supportCopilot } from '../../topologies/support-copilot.ts'

/** The topologies `replay`, `status` and `demo` know by name, with their factories and default prefixes. */
export const REFERENCE_TOPOLOGIES = {
  'support-copilot': { defaultPrefix: 'support', prefixEnv: 'RAGSTREAM_SUPPORT_PREFIX', build: supportCopilot },
  'knowledge-base': { defaultPrefix: 'kb', prefixEnv: 'RAGSTREAM_KB_PREFIX', build: knowledgeBase },
} as const

export type ReferenceTopology = keyof typeof REFERENCE_TOPOLOGIES

const VERSION = /^v[0-9]+$|^[a-z][a-z0-9_]{0,15}$/

export interface DeploymentOptions {
  readonly topology: string
  readonly version: string
  /** Source topic prefix; default from the topology's environment variable, else its default. */
  readonly prefix?: string
  /** Base of the Kafka names (application id, chunk topic); default the topology name. */
  readonly name?: string
  /** Topology name in SQL (tables, view); default the topology name. */
  readonly sqlTopology?: string
  /** Embedding cache key prefix; default `rs:emb`, shared by every version on purpose (a same-model replay costs no calls). */
  readonly cachePrefix?: string
  /** Default: the built-in hashing embedder with the sink's dimensions. */
  readonly embedding?: ProviderEmbeddingConfig
  /** Governance deletions topic (support-copilot); default see `deletionsTopicFor`. */
  readonly deletionsTopic?: string
  readonly config: RagstreamConfig
}

export interface Deployment {
  readonly topology: ReferenceTopology
  readonly version: string
  readonly prefix: string
  readonly applicationId: string
  readonly chunkTopic: string
  readonly cachePrefix: string | undefined
  readonly embedding: ProviderEmbeddingConfig
  readonly sink: SinkConfig
  /** The governance deletions topic the topology reads (`ragstream forget --deletions-topic`); undefined when it reads none. */
  readonly deletionsTopic: string | undefined
  readonly config: RagstreamConfig
}

/**
 * A governed topology's deletions topic: `governance.deletions` (what `ragstream forget` writes to by
 * default) for the default source prefix, else `<prefix>.governance.deletions`, because the topic
 * must be co-partitioned with the sources it governs. Every version of one prefix reads the same one,
 * so a replay into v2 forgets what v1 forgot.
 */
export function deletionsTopicFor(topology: ReferenceTopology, prefix: string): string | undefined {
  if (topology !== 'support-copilot') return undefined
  return prefix === REFERENCE_TOPOLOGIES[topology].defaultPrefix
    ? SUPPORT_DELETIONS_TOPIC
    : `${prefix}.governance.deletions`
}

export function deployment(o: DeploymentOptions): Deployment {
  const problems = []
  if (!(o.topology in REFERENCE_TOPOLOGIES))
    problems.push({ path: '<topology>', message: `expected one of ${Object.keys(REFERENCE_TOPOLOGIES).join(', ')}` })
  if (!VERSION.test(o.version))
    problems.push({
      path: '--to-version',
      message: 'expected a version like v2 (lower-case letters, digits, _; at most 16)',
    })
  if (problems.length > 0) throw new ConfigError(problems, 'arguments')
  const topology = o.topology as ReferenceTopology
  const ref = REFERENCE_TOPOLOGIES[topology]
  const name = o.name ?? topology
  const prefix = o.prefix ?? (o.config.env[ref.prefixEnv]?.trim() || ref.defaultPrefix)
  const first = o.version === 'v1'
  const chunkTopic = first ? `rag.chunks.${name}` : `rag.chunks.${name}.${o.version}`
  const s = o.config.sink
  const sink = resolveSinkConfig({
    topology: o.sqlTopology ?? topology,
    version: o.version,
    topic: chunkTopic,
    dims: s.dimensions,
    schema: s.schema,
    viewSchema: s.viewSchema,
    ownerRole: s.ownerRole,
    sinkRole: s.sinkRole,
    batchLingerMs: 100,
  })
  const deletionsTopic =
    topology === 'support-copilot' ? (o.deletionsTopic ?? deletionsTopicFor(topology, prefix)) : undefined
  return {
    topology,
    version: o.version,
    prefix,
    applicationId: first ? name : `${name}-${o.version}`,
    chunkTopic,
    cachePrefix: o.cachePrefix,
    embedding: o.embedding ?? { kind: 'hashing', dimensions: s.dimensions },
    sink,
    deletionsTopic,
    config: o.config,
  }
}

/** The embedding and codec services of a deployment, at the configured endpoints (connects nothing until the first batch). */
export function deploymentServices(d: Deployment): RagServices {
  const endpoints = d.config.endpoints
  const redis = new Redis(endpoints.redisUrl, { lazyConnect: true })
  redis.on('error', () => {})
  return new RagServices({
    redis,
    redisAddress: redactUrl(endpoints.redisUrl),
    registryUrl: endpoints.schemaRegistryUrl,
    chunkTopic: d.chunkTopic,
    cachePrefix: d.cachePrefix,
    cacheBound: embeddingCacheBoundFromEnv(d.config.env),
    embedding: d.embedding,
    env: d.config.env,
  })
}

export function buildTopology(d: Deployment, services: RagServices): Topology {
  const common = {
    prefix: d.prefix,
    applicationId: d.applicationId,
    version: d.version,
    chunkTopic: d.chunkTopic,
    services,
  }
  return d.topology === 'support-copilot'
    ? supportCopilot({ ...common, deletionsTopic: d.deletionsTopic })
    : REFERENCE_TOPOLOGIES[d.topology].build(common)
}

/** Compiles with the partition counts the broker reports (the same rule as `ragstream run`). */
export async function compileForBroker(topology: Topology, endpoints: Endpoints): Promise<ProcessorTopology> {
  return compileForKafka(topology, endpoints.kafkaBrokers, 'ops-admin')
}

/** The external source topics of a deployment (no broker needed). */
export function sourceTopics(d: Deployment): string[] {
  const services = deploymentServices(d)
  try {
    const compiled = buildTopology(d, services).compile({ partitions: 1 })
    const internal = new Set(compiled.topics.filter((t) => t.role !== 'source').map((t) => t.name))
    return compiled.sourceTopics.filter((t) => !internal.has(t))
  } finally {
    void services.close()
  }
}
