/**
 * A deployment is one version of an app (what a topology file default-exports, `defineApp`), with its
 * names from `versionNames` (src/app/naming.ts), its sink configuration and its embedding model, so
 * `run`, `sink`, `replay`, `promote`, `status`, `forget` and `query` agree on what "my-app@v2" is
 * without a registry.
 */
import { Redis } from 'ioredis'
import { defineApp, type App } from '../app/app.ts'
import type { VersionNames } from '../app/naming.ts'
import { RagServices } from '../config/rag-services.ts'
import { embeddingCacheBoundFromEnv } from '../embedding/cache.ts'
import type { ProviderEmbeddingConfig } from '../embedding/config.ts'
import { redactUrl, type Endpoints } from '../config/endpoints.ts'
import type { RagstreamConfig } from '../config/file.ts'
import { compileForBroker as compileForKafka } from '../runtime/compile-for-broker.ts'
import type { ProcessorTopology } from '../runtime/task.ts'
import { resolveSinkConfig, type SinkConfig } from '../sink/config.ts'
import type { Topology } from '../topology/topology.ts'

export interface DeploymentOptions {
  readonly app: App
  readonly version: string
  /** Source topic prefix; default the app's (its variable, else its default). */
  readonly prefix?: string
  /** Overrides the app's name (the base of the Kafka names): several copies of one app side by side. */
  readonly name?: string
  /** Overrides the app's SQL name (tables, view). */
  readonly sqlTopology?: string
  /** Embedding cache key prefix; default `rs:emb`, shared by every version on purpose (a same-model replay costs no calls). */
  readonly cachePrefix?: string
  /** Default: the app's, else the built-in hashing embedder with the sink's dimensions. */
  readonly embedding?: ProviderEmbeddingConfig
  /** Overrides the app's deletions topic. */
  readonly deletionsTopic?: string
  readonly config: RagstreamConfig
}

export interface Deployment {
  /** The app's name (after overrides). */
  readonly topology: string
  readonly app: App
  readonly version: string
  readonly names: VersionNames
  readonly prefix: string | undefined
  readonly applicationId: string
  readonly chunkTopic: string
  readonly cachePrefix: string | undefined
  readonly embedding: ProviderEmbeddingConfig
  readonly sink: SinkConfig
  /** The governance deletions topic the app reads (`ragstream forget`); undefined when it reads none. */
  readonly deletionsTopic: string | undefined
  readonly config: RagstreamConfig
}

export function deployment(o: DeploymentOptions): Deployment {
  const app =
    (o.name !== undefined && o.name !== o.app.name) || (o.sqlTopology !== undefined && o.sqlTopology !== o.app.sqlName)
      ? defineApp({
          ...o.app,
          name: o.name ?? o.app.name,
          sqlName: o.sqlTopology ?? (o.name !== undefined && o.app.sqlName === o.app.name ? o.name : o.app.sqlName),
          // an explicit chunk topic belongs to the app's own name; a renamed copy derives its own
          chunkTopic: o.name !== undefined && o.name !== o.app.name ? undefined : o.app.chunkTopic,
        })
      : o.app
  const names = app.names(o.version)
  const prefix = app.resolvePrefix(o.prefix, o.config.env)
  const s = o.config.sink
  const sink = resolveSinkConfig({
    topology: names.sqlName,
    version: names.version,
    topic: names.chunkTopic,
    groupId: names.sinkGroup,
    dims: s.dimensions,
    schema: s.schema,
    viewSchema: s.viewSchema,
    ownerRole: s.ownerRole,
    sinkRole: s.sinkRole,
    batchLingerMs: 100,
  })
  return {
    topology: app.name,
    app,
    version: names.version,
    names,
    prefix,
    applicationId: names.applicationId,
    chunkTopic: names.chunkTopic,
    cachePrefix: o.cachePrefix,
    embedding: o.embedding ?? app.services?.embedding ?? { kind: 'hashing', dimensions: s.dimensions },
    sink,
    deletionsTopic: o.deletionsTopic ?? app.deletionsTopicFor(prefix),
    config: o.config,
  }
}

/** The embedding and codec services of a deployment, at the configured endpoints (connects nothing until the first batch). */
export function deploymentServices(d: Deployment): RagServices {
  const endpoints = d.config.endpoints
  const redis = new Redis(endpoints.redisUrl, { lazyConnect: true })
  redis.on('connect', () => (redis as unknown as { stream?: { unref?: () => void } }).stream?.unref?.())
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
  return d.app.deploy({
    version: d.version,
    prefix: d.prefix,
    env: d.config.env,
    deletionsTopic: d.deletionsTopic,
    services,
  }).topology
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
