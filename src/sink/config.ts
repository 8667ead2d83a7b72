/**
 * What the pgvector sink needs to know about one topology version, validated once. Until the
 * topology loader carries a `sink` section, the CLI builds this from its options.
 */
import { ConfigError, type Problem } from '../errors.ts'
import { checkIdentifier, derivedIdentifier, qualified } from './identifiers.ts'

export type Distance = 'cosine' | 'l2' | 'inner_product'
/** Column type of the embedding: `halfvec` stores 2 bytes per dimension instead of 4 and indexes up to 4000. */
export type VectorStorage = 'vector' | 'halfvec'
/** pgvector index method on the embedding. */
export type VectorIndex = 'hnsw' | 'ivfflat'

/**
 * When a batch closes (besides `batchMaxRecords`): `adaptive` as soon as the sink has read everything
 * committed on its partitions, so an idle sink writes a change at once and a loaded one writes what
 * arrived during its previous transaction (never later than `batchLingerMs` while records keep
 * coming); `linger` always waits `batchLingerMs` from a batch's first record.
 */
export type BatchWait = 'adaptive' | 'linger'

export interface SinkConfigInput {
  readonly topology: string
  /** Topology version, e.g. `v1`: one table per version. */
  readonly version?: string
  /** Chunk topic; default `rag.chunks.<topology>`. */
  readonly topic?: string
  readonly dims: number
  readonly distance?: Distance
  readonly hnsw?: { readonly m?: number; readonly efConstruction?: number }
  /** Embedding column type; default `vector`. Fixed per version, like dims. */
  readonly storage?: VectorStorage
  /** Vector index method; default `hnsw`. Fixed per version. */
  readonly index?: VectorIndex
  /** IVFFlat lists (used when index is `ivfflat`); default 100. */
  readonly ivfflat?: { readonly lists?: number }
  /**
   * Bulk mode (replay/backfill): a version created with it gets its table without the vector index;
   * `buildVectorIndex` builds it once after the load, and the version cannot be activated before.
   */
  readonly deferIndex?: boolean
  /** Schema of the tables (analysts get no USAGE on it); default `ragstream`. */
  readonly schema?: string
  /** Schema of the analyst views; default `rag`. */
  readonly viewSchema?: string
  readonly ownerRole?: string
  readonly sinkRole?: string
  readonly groupId?: string
  readonly batchMaxRecords?: number
  /** The longest a batch waits to fill (from its first record); default 200. */
  readonly batchLingerMs?: number
  /** Default `adaptive` (see `BatchWait`). */
  readonly batchWait?: BatchWait
  /**
   * Time cap of one batch's Postgres transaction, in ms (default 1000): a batch holds at most as many
   * records as the sink wrote in this long at its recent rate (never fewer than 100, never more than
   * `batchMaxRecords`). It bounds how long a partition moved to another sink waits for this one's
   * transaction in flight, and the freshness cost of a backlog's large batches.
   */
  readonly batchMaxMs?: number
  readonly sessionTimeoutMs?: number
  /** Kafka static membership id: a restarted sink with the same id takes its partitions back without a rebalance. */
  readonly instanceId?: string
  /**
   * Longest chunk id (record key) and longest entity type + key, in UTF-8 bytes, the sink writes; longer
   * records go to sink_rejects. Both are btree-indexed, and a btree entry holds at most ~2700 bytes.
   */
  readonly maxKeyBytes?: number
  /**
   * Postgres ends the sink's session when it sits idle inside a transaction this long (a sink frozen
   * mid-batch: SIGSTOP, a VM pause): its row locks go and another sink can claim its partitions.
   */
  readonly idleInTransactionTimeoutMs?: number
  /** A statement waiting this long for a lock fails and is retried, instead of waiting forever. */
  readonly lockTimeoutMs?: number
}

/** The SQL names of one topology version, each checked and quoted. */
export interface SinkNames {
  readonly schema: string
  readonly viewSchema: string
  readonly ownerRole: string
  readonly sinkRole: string
  /** Quoted, schema-qualified. */
  readonly chunkTable: string
  readonly tombstoneTable: string
  readonly view: string
  readonly freshnessView: string
  readonly offsetsTable: string
  readonly auditTable: string
  readonly rejectsTable: string
  readonly grantsTable: string
  readonly versionsTable: string
  readonly migrationsTable: string
  /** Registry of per-tenant tables (tenant isolation mode). */
  readonly tenantTablesTable: string
  /** Unquoted names, for catalog lookups and index names. */
  readonly chunkTableName: string
  readonly tombstoneTableName: string
  readonly viewName: string
  readonly freshnessViewName: string
  readonly indexNames: {
    readonly hnsw: string
    readonly ivfflat: string
    readonly entity: string
    readonly metadata: string
    readonly tombstoneSubjects: string
  }
}

export interface SinkConfig {
  readonly topology: string
  readonly version: string
  readonly topic: string
  readonly dims: number
  readonly distance: Distance
  readonly hnsw: { readonly m: number; readonly efConstruction: number }
  readonly storage: VectorStorage
  readonly index: VectorIndex
  readonly ivfflat: { readonly lists: number }
  readonly deferIndex: boolean
  readonly groupId: string
  readonly batchMaxRecords: number
  readonly batchLingerMs: number
  readonly batchWait: BatchWait
  readonly batchMaxMs: number
  readonly sessionTimeoutMs: number
  readonly instanceId: string | undefined
  readonly maxKeyBytes: number
  readonly idleInTransactionTimeoutMs: number
  readonly lockTimeoutMs: number
  readonly names: SinkNames
}

/** The defaults docs/operations.md documents ("Limits and timeouts of the sink"). */
export const SINK_LIMIT_DEFAULTS = {
  maxKeyBytes: 1024,
  idleInTransactionTimeoutMs: 10_000,
  lockTimeoutMs: 5_000,
} as const

const DISTANCES: readonly Distance[] = ['cosine', 'l2', 'inner_product']
const STORAGES: readonly VectorStorage[] = ['vector', 'halfvec']
const INDEXES: readonly VectorIndex[] = ['hnsw', 'ivfflat']
/** Most dimensions pgvector indexes (HNSW and IVFFlat) per column type. */
export const MAX_INDEXED_DIMS: Readonly<Record<VectorStorage, number>> = { vector: 2000, halfvec: 4000 }

function intIn(problems: Problem[], path: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.push({ path, message: `must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})` })
    return fallback
  }
  return value
}

/**
 * Validates the sink section of a topology. Identifier problems throw RS_IDENTIFIER_INVALID naming
 * the field at once; every other problem is collected into one RS_CONFIG_INVALID.
 */
export function resolveSinkConfig(input: SinkConfigInput): SinkConfig {
  const topology = checkIdentifier('/sink/topology', input.topology, 'topology-name')
  const version = checkIdentifier('/sink/version', input.version ?? 'v1', 'topology-name')
  const schema = checkIdentifier('/sink/schema', input.schema ?? 'ragstream')
  const viewSchema = checkIdentifier('/sink/viewSchema', input.viewSchema ?? 'rag')
  const ownerRole = checkIdentifier('/sink/ownerRole', input.ownerRole ?? 'ragstream_owner')
  const sinkRole = checkIdentifier('/sink/sinkRole', input.sinkRole ?? 'ragstream_sink')
  const problems: Problem[] = []
  if (schema === viewSchema)
    problems.push({
      path: '/sink/viewSchema',
      message: 'must differ from /sink/schema (analysts get USAGE on the view schema only)',
    })
  if (ownerRole === sinkRole)
    problems.push({
      path: '/sink/sinkRole',
      message: 'must differ from /sink/ownerRole (the sink must not own the tables)',
    })
  const storage = input.storage ?? 'vector'
  if (!STORAGES.includes(storage))
    problems.push({ path: '/sink/storage', message: `must be one of ${STORAGES.join(', ')}` })
  const index = input.index ?? 'hnsw'
  if (!INDEXES.includes(index)) problems.push({ path: '/sink/index', message: `must be one of ${INDEXES.join(', ')}` })
  // pgvector indexes up to 2000 dimensions of `vector`, 4000 of `halfvec`.
  const dims = intIn(problems, '/sink/dims', input.dims, 1, MAX_INDEXED_DIMS[storage] ?? 2000, 0)
  const lists = intIn(problems, '/sink/ivfflat/lists', input.ivfflat?.lists, 1, 32_768, 100)
  if (input.dims === undefined) problems.push({ path: '/sink/dims', message: 'required' })
  const distance = input.distance ?? 'cosine'
  if (!DISTANCES.includes(distance))
    problems.push({ path: '/sink/distance', message: `must be one of ${DISTANCES.join(', ')}` })
  const m = intIn(problems, '/sink/hnsw/m', input.hnsw?.m, 2, 100, 16)
  const efConstruction = intIn(problems, '/sink/hnsw/efConstruction', input.hnsw?.efConstruction, 4, 1000, 64)
  if (efConstruction < 2 * m)
    problems.push({ path: '/sink/hnsw/efConstruction', message: `must be at least 2 × m (${2 * m})` })
  const batchMaxRecords = intIn(problems, '/sink/batchMaxRecords', input.batchMaxRecords, 1, 100_000, 2000)
  const batchLingerMs = intIn(problems, '/sink/batchLingerMs', input.batchLingerMs, 0, 60_000, 200)
  const batchWait = input.batchWait ?? 'adaptive'
  if (batchWait !== 'adaptive' && batchWait !== 'linger')
    problems.push({
      path: '/sink/batchWait',
      message: `must be 'adaptive' or 'linger' (got ${JSON.stringify(batchWait)})`,
    })
  const batchMaxMs = intIn(problems, '/sink/batchMaxMs', input.batchMaxMs, 10, 600_000, 1000)
  const sessionTimeoutMs = intIn(problems, '/sink/sessionTimeoutMs', input.sessionTimeoutMs, 6000, 300_000, 10_000)
  const maxKeyBytes = intIn(problems, '/sink/maxKeyBytes', input.maxKeyBytes, 16, 2400, SINK_LIMIT_DEFAULTS.maxKeyBytes)
  const idleInTransactionTimeoutMs = intIn(
    problems,
    '/sink/idleInTransactionTimeoutMs',
    input.idleInTransactionTimeoutMs,
    1000,
    600_000,
    SINK_LIMIT_DEFAULTS.idleInTransactionTimeoutMs,
  )
  const lockTimeoutMs = intIn(
    problems,
    '/sink/lockTimeoutMs',
    input.lockTimeoutMs,
    100,
    600_000,
    SINK_LIMIT_DEFAULTS.lockTimeoutMs,
  )
  const topic = input.topic ?? `rag.chunks.${topology}`
  if (typeof topic !== 'string' || !/^[A-Za-z0-9._-]{1,249}$/.test(topic))
    problems.push({ path: '/sink/topic', message: 'must be a valid Kafka topic name' })
  if (problems.length > 0) throw new ConfigError(problems, 'sink configuration')

  const chunkTableName = derivedIdentifier('/sink/topology', `chunks_${topology}_${version}`)
  const tombstoneTableName = derivedIdentifier('/sink/topology', `tombstones_${topology}_${version}`)
  const freshnessViewName = derivedIdentifier('/sink/topology', `${topology}_freshness`)
  const names: SinkNames = {
    schema,
    viewSchema,
    ownerRole,
    sinkRole,
    chunkTable: qualified(schema, chunkTableName),
    tombstoneTable: qualified(schema, tombstoneTableName),
    view: qualified(viewSchema, topology),
    freshnessView: qualified(viewSchema, freshnessViewName),
    offsetsTable: qualified(schema, 'sink_offsets'),
    auditTable: qualified(schema, 'audit_events'),
    rejectsTable: qualified(schema, 'sink_rejects'),
    grantsTable: qualified(schema, 'analyst_grants'),
    versionsTable: qualified(schema, 'topology_versions'),
    migrationsTable: qualified(schema, 'schema_migrations'),
    tenantTablesTable: qualified(schema, 'tenant_tables'),
    chunkTableName,
    tombstoneTableName,
    viewName: topology,
    freshnessViewName,
    indexNames: {
      hnsw: derivedIdentifier('/sink/topology', `${chunkTableName}_hnsw`),
      ivfflat: derivedIdentifier('/sink/topology', `${chunkTableName}_ivfflat`),
      entity: derivedIdentifier('/sink/topology', `${chunkTableName}_entity`),
      metadata: derivedIdentifier('/sink/topology', `${chunkTableName}_metadata`),
      tombstoneSubjects: derivedIdentifier('/sink/topology', `${tombstoneTableName}_subjects`),
    },
  }
  return {
    topology,
    version,
    topic,
    dims,
    distance,
    hnsw: { m, efConstruction },
    storage,
    index,
    ivfflat: { lists },
    deferIndex: input.deferIndex ?? false,
    groupId: input.groupId ?? `ragstream-sink.${topology}.${version}`,
    batchMaxRecords,
    batchLingerMs,
    batchWait,
    batchMaxMs,
    sessionTimeoutMs,
    instanceId: input.instanceId,
    maxKeyBytes,
    idleInTransactionTimeoutMs,
    lockTimeoutMs,
    names,
  }
}

/** pgvector operator class and distance operator per distance. */
export const DISTANCE_SQL: Readonly<Record<Distance, { readonly opclass: string; readonly operator: string }>> = {
  cosine: { opclass: 'vector_cosine_ops', operator: '<=>' },
  l2: { opclass: 'vector_l2_ops', operator: '<->' },
  inner_product: { opclass: 'vector_ip_ops', operator: '<#>' },
}

/** The index operator class for a column type and distance (`halfvec_cosine_ops`, …). */
export function opclassFor(storage: VectorStorage, distance: Distance): string {
  const { opclass } = DISTANCE_SQL[distance]
  return storage === 'halfvec' ? opclass.replace(/^vector_/, 'halfvec_') : opclass
}
