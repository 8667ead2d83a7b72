/**
 * An app: what a topology file default-exports so that every command (`run`, `sink`, `status`,
 * `replay`, `promote`, `forget`, `query`, `describe`) can deploy it. It declares, once, its name, its
 * SQL name, where its sources are, its chunk and deletions topics and its services, and builds its
 * graph from a deployment the framework passes in: the version, every name derived from it
 * (`versionNames`, src/app/naming.ts) and the services, opened and closed by the framework.
 *
 * @example
 * ```ts
 * import { defineApp, TopologyBuilder } from 'ragstream'
 *
 * export default defineApp({
 *   name: 'reviews',
 *   sourcePrefix: { default: 'shop', env: 'SHOP_PREFIX' },
 *   build(deployment) {
 *     const builder = new TopologyBuilder({ applicationId: deployment.applicationId })
 *     builder.table(deployment.source('public.reviews'), { name: 'reviews' }).to(deployment.chunkTopic)
 *     return builder.build()
 *   },
 * })
 * ```
 */
import type { TailServices } from '../config/rag-services.ts'
import type { ProviderEmbeddingConfig } from '../embedding/config.ts'
import { ConfigError, type Problem } from '../errors.ts'
import { isTopology, type Topology } from '../topology/topology.ts'
import { checkNames, versionNames, type VersionNames } from './naming.ts'

/** Where an app's source topics are: a prefix (the Debezium server name) with its default and override. */
export interface SourcePrefix {
  /** The prefix when nothing overrides it. */
  readonly default: string
  /** An environment variable (or config-file value) that overrides the default, e.g. `SHOP_PREFIX`. */
  readonly env?: string
}

/** Services an app asks for; the framework creates them (from the configuration, or in-memory in the test driver). */
export interface AppServicesOptions {
  /** The embedding model; default the built-in hashing embedder with the sink's dimensions. */
  readonly embedding?: ProviderEmbeddingConfig
}

export interface AppOptions {
  /** Base of the Kafka names: application id, internal topics, chunk topic (`[a-z][a-z0-9-]*`). */
  readonly name: string
  /** Name in SQL: tables `chunks_<sqlName>_<version>`, view `rag.<sqlName>`; default `name`. */
  readonly sqlName?: string
  /** Prefix of the source topics (`deployment.source('public.orders')` → `<prefix>.public.orders`). */
  readonly sourcePrefix?: string | SourcePrefix
  /** The v1 chunk topic; default `rag.chunks.<name>` (version vN writes `<chunkTopic>.vN`). */
  readonly chunkTopic?: string
  /**
   * The governance deletions topic the app reads (what `ragstream forget` writes to): a topic name, or
   * a function of the resolved source prefix (it must be co-partitioned with the sources it governs).
   * Every version reads the same one, so a replay into v2 forgets what v1 forgot.
   */
  readonly deletionsTopic?: string | ((prefix: string | undefined) => string)
  readonly services?: AppServicesOptions
  /** Builds the graph of one deployment (pure: no I/O; the services connect on the first batch). */
  build(deployment: AppDeployment): Topology
}

/** What the framework passes to `build`: one version of the app, its names and its services. */
export interface AppDeployment extends VersionNames {
  /** The resolved source prefix; undefined when the app declares none. */
  readonly prefix: string | undefined
  /** The governance deletions topic; undefined when the app reads none. */
  readonly deletionsTopic: string | undefined
  readonly services: TailServices
  /** A source topic: `<prefix>.<name>`, or `name` when the app has no prefix. */
  source(name: string): string
}

export interface DeployOptions {
  /** Default `v1`. */
  readonly version?: string
  /** Overrides the app's source prefix (e.g. `--prefix`). */
  readonly prefix?: string
  /** Where the prefix variable is read; default `process.env`. */
  readonly env?: NodeJS.ProcessEnv
  /** Overrides the app's deletions topic. */
  readonly deletionsTopic?: string
  readonly services: TailServices
}

const APP = Symbol.for('ragstream.app')

/** An app, as `defineApp` returns it (frozen). */
export interface App extends Readonly<AppOptions> {
  readonly [APP]: true
  readonly sqlName: string
  /** The names of one version (no services needed). */
  names(version?: string): VersionNames
  /** The source prefix a deployment would use (override, else the variable, else the default). */
  resolvePrefix(override?: string, env?: NodeJS.ProcessEnv): string | undefined
  /** The deletions topic for a source prefix; undefined when the app reads none. */
  deletionsTopicFor(prefix: string | undefined): string | undefined
  /** Builds the topology of one deployment. */
  deploy(options: DeployOptions): { readonly deployment: AppDeployment; readonly topology: Topology }
}

/** Declares an app; checks its names at once, so a bad name fails at import with the field named. */
export function defineApp(options: AppOptions): App {
  const problems: Problem[] = []
  if (options === null || typeof options !== 'object')
    throw new ConfigError([{ path: 'app', message: 'expected an object' }], 'app')
  if (typeof options.build !== 'function')
    problems.push({ path: 'app.build', message: 'required: a function (deployment) => topology' })
  const p = options.sourcePrefix
  if (p !== undefined && typeof p !== 'string' && (typeof p !== 'object' || typeof p.default !== 'string'))
    problems.push({ path: 'app.sourcePrefix', message: 'expected a string or { default, env? }' })
  if (
    options.deletionsTopic !== undefined &&
    typeof options.deletionsTopic !== 'string' &&
    typeof options.deletionsTopic !== 'function'
  )
    problems.push({ path: 'app.deletionsTopic', message: 'expected a topic name or a function of the source prefix' })
  if (problems.length > 0) throw new ConfigError(problems, 'app')
  checkNames(options)
  const sqlName = options.sqlName ?? options.name

  const names = (version?: string): VersionNames =>
    versionNames({ name: options.name, sqlName, version, chunkTopic: options.chunkTopic })
  const resolvePrefix = (override?: string, env: NodeJS.ProcessEnv = process.env): string | undefined => {
    if (override !== undefined && override !== '') return override
    if (p === undefined) return undefined
    if (typeof p === 'string') return p
    return (p.env !== undefined ? env[p.env]?.trim() : undefined) || p.default
  }
  const deletionsTopicFor = (prefix: string | undefined): string | undefined => {
    const d = options.deletionsTopic
    return d === undefined ? undefined : typeof d === 'string' ? d : d(prefix)
  }
  const app: App = {
    ...options,
    [APP]: true,
    sqlName,
    names,
    resolvePrefix,
    deletionsTopicFor,
    deploy(o) {
      const prefix = resolvePrefix(o.prefix, o.env)
      const deployment: AppDeployment = Object.freeze({
        ...names(o.version),
        prefix,
        deletionsTopic: o.deletionsTopic ?? deletionsTopicFor(prefix),
        services: o.services,
        source: (name: string) => (prefix === undefined ? name : `${prefix}.${name}`),
      })
      const topology = options.build(deployment)
      if (!isTopology(topology))
        throw new ConfigError(
          [
            {
              path: 'app.build',
              message: `must return a topology built with TopologyBuilder#build() (${options.name})`,
            },
          ],
          'app',
        )
      if (topology.applicationId !== deployment.applicationId)
        throw new ConfigError(
          [
            {
              path: 'app.build',
              message: `built a topology with applicationId ${JSON.stringify(topology.applicationId)}; use deployment.applicationId (${JSON.stringify(deployment.applicationId)}) so every version gets its own group, stores and internal topics`,
            },
          ],
          'app',
        )
      return { deployment, topology }
    },
  }
  return Object.freeze(app)
}

/** True for what `defineApp` returned. */
export function isApp(value: unknown): value is App {
  return typeof value === 'object' && value !== null && (value as { [APP]?: unknown })[APP] === true
}
