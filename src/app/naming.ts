/**
 * The naming rules of an app's versions, in one place. `run`, `sink`, `status`, `replay`, `promote`,
 * `forget` and `query` all derive what "my-app@v2" means from here, so they agree without a registry:
 *
 *                       v1                                vN (N ≥ 2, or any other version name)
 *   application id      <name>                            <name>-vN      (consumer group, transactional ids)
 *   internal topics     <name>-<store>-changelog, …       <name>-vN-<store>-changelog, …
 *   Redis state keys    rs:{<name>:<store>:<partition>}…  rs:{<name>-vN:<store>:<partition>}…
 *   chunk topic         rag.chunks.<name> (or the app's)  <v1 chunk topic>.vN
 *   chunk table         <schema>.chunks_<sql>_v1          <schema>.chunks_<sql>_vN
 *   tombstone table     <schema>.tombstones_<sql>_v1      <schema>.tombstones_<sql>_vN
 *   analyst view        <viewSchema>.<sql> → the active version's table (ragstream promote)
 *   sink group          ragstream-sink.<sql>.v1           ragstream-sink.<sql>.vN
 *
 * The embedding cache (`rs:emb:…`) is shared by every version and app on purpose: a replay with the
 * same model costs no embedding calls.
 */
import { ConfigError, type Problem } from '../errors.ts'
import { checkIdentifier, derivedIdentifier } from '../sink/identifiers.ts'

/** `v2`, or a short lower-case name (`canary`, `v2_hnsw32`). */
export const VERSION_PATTERN = /^v[0-9]+$|^[a-z][a-z0-9_]{0,15}$/
/** An app name: the base of Kafka topic names and consumer groups (`reviews`, `support-copilot`). */
export const APP_NAME_PATTERN = /^[a-z][a-z0-9-]{0,47}$/
/** The embedding cache key prefix every version shares. */
export const EMBEDDING_CACHE_PREFIX = 'rs:emb'

export interface VersionNamesInput {
  /** The app's name (`APP_NAME_PATTERN`). */
  readonly name: string
  /** The app's name in SQL; default `name`. */
  readonly sqlName?: string
  /** Default `v1`. */
  readonly version?: string
  /** The v1 chunk topic; default `rag.chunks.<name>`. */
  readonly chunkTopic?: string
}

/** Every name one version of an app uses. SQL names are unqualified (schemas come from the configuration). */
export interface VersionNames {
  readonly name: string
  readonly sqlName: string
  readonly version: string
  /** Consumer group and transactional-id prefix of the processor. */
  readonly applicationId: string
  /** Prefix of every internal topic (changelogs, repartition topics) the processor creates. */
  readonly internalTopicPrefix: string
  /** Prefix of every Redis state key the processor writes (`SCAN MATCH <prefix>*` finds them all). */
  readonly redisKeyPrefix: string
  readonly chunkTopic: string
  readonly chunkTable: string
  readonly tombstoneTable: string
  /** The analyst view (one per app, pointing at the active version). */
  readonly view: string
  readonly sinkGroup: string
  readonly embeddingCachePrefix: string
}

/** Validates an app's name, SQL name and version; one ConfigError lists every problem. */
export function checkNames(input: VersionNamesInput, where = 'app'): void {
  const problems: Problem[] = []
  if (typeof input.name !== 'string' || !APP_NAME_PATTERN.test(input.name))
    problems.push({
      path: `${where}.name`,
      message: `${JSON.stringify(input.name)} must match ${APP_NAME_PATTERN.source} (it names topics and consumer groups)`,
    })
  const version = input.version ?? 'v1'
  if (typeof version !== 'string' || !VERSION_PATTERN.test(version))
    problems.push({
      path: 'version',
      message: `expected a version like v2 (lower-case letters, digits, _; at most 16), got ${JSON.stringify(version)}`,
    })
  if (input.chunkTopic !== undefined && !/^[A-Za-z0-9._-]{1,200}$/.test(input.chunkTopic))
    problems.push({
      path: `${where}.chunkTopic`,
      message: `${JSON.stringify(input.chunkTopic)} is not a Kafka topic name`,
    })
  if (problems.length > 0) throw new ConfigError(problems, where)
  checkIdentifier(`${where}.sqlName`, input.sqlName ?? input.name, 'topology-name')
}

/** The names of one version of an app (throws a ConfigError naming the field when one is invalid). */
export function versionNames(input: VersionNamesInput): VersionNames {
  checkNames(input)
  const { name } = input
  const sqlName = input.sqlName ?? name
  const version = input.version ?? 'v1'
  const first = version === 'v1'
  const applicationId = first ? name : `${name}-${version}`
  const baseTopic = input.chunkTopic ?? `rag.chunks.${name}`
  return {
    name,
    sqlName,
    version,
    applicationId,
    internalTopicPrefix: `${applicationId}-`,
    redisKeyPrefix: `rs:{${applicationId}:`,
    chunkTopic: first ? baseTopic : `${baseTopic}.${version}`,
    chunkTable: derivedIdentifier(`app.sqlName`, `chunks_${sqlName}_${version}`),
    tombstoneTable: derivedIdentifier(`app.sqlName`, `tombstones_${sqlName}_${version}`),
    view: sqlName,
    sinkGroup: `ragstream-sink.${sqlName}.${version}`,
    embeddingCachePrefix: EMBEDDING_CACHE_PREFIX,
  }
}
