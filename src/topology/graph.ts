/**
 * The logical topology graph the DSL builds: frozen plain nodes in build (topological) order, each
 * naming its inputs. Everything but the user functions serialises (`toJSON` in describe.ts); the
 * functions stay on the nodes so the graph compiles without a registry.
 */
import type { TailServices } from '../config/rag-services.ts'
import type { ChunkEmbedNodeOptions } from '../operators/chunk-embed.ts'
import type { AuditOutput, GovernNodeOptions } from '../operators/govern/index.ts'
import type { RecordOrigin, SourceRecord } from '../runtime/task.ts'
import type { StateStore } from '../state/store.ts'
import type { DecodedRecord } from './decoded-record.ts'

/** Every node kind. Adding one fails `tsc` until src/topology/node-kinds.ts handles it. */
export type NodeKind =
  | 'table-source'
  | 'filter'
  | 'map-values'
  | 'peek'
  | 'fk-join'
  | 'aggregate'
  | 'stage'
  | 'govern'
  | 'chunk-embed'
  | 'sink'

export type { CdcMark, DecodedRecord } from './decoded-record.ts'

/**
 * Turns a source record's bytes into a table row. Return `{ key, value: null }` for a delete
 * (Debezium `op=d`, a null-value tombstone). Throwing sends the record to the dead-letter topic.
 */
export type Decoder = (key: Buffer | null, value: Buffer | null, record: SourceRecord) => DecodedRecord

/** Per-batch I/O a decoder needs before it can decode synchronously (e.g. loading Avro writer schemas). */
export type DecoderPreparer = (records: readonly SourceRecord[]) => Promise<void>

/** Turns an output row back into bytes for a sink topic. */
export type Encoder = (key: string, value: unknown) => { key: Buffer | null; value: Buffer | null }

interface NodeBase {
  readonly kind: NodeKind
  /** Unique in the topology; for stateful nodes also the store and changelog identity. */
  readonly name: string
  /** False when the DSL generated the name (allowed for stateless nodes only). */
  readonly named: boolean
  readonly inputs: readonly string[]
}

/** A table read from a topic: a CDC changelog (needs a decoder) or a compacted topic. */
export interface TableSourceNode extends NodeBase {
  readonly kind: 'table-source'
  readonly topic: string
  readonly format: 'cdc' | 'compacted'
  readonly decode: Decoder | undefined
  readonly prepare: DecoderPreparer | undefined
  /** The data subject of its rows (src/operators/table-source.ts). */
  readonly subject?: TableSubject
  /** CDC tables: where the audit events of its truncates and snapshot resets go (src/operators/audit-outputs.ts). */
  readonly audit?: AuditOutput
}

/** A subject type (the row key is the id) or a function naming a row's subject (`type:id`), null for none. */
export type TableSubject = string | ((value: any, key: string) => string | null)

export interface FilterNode extends NodeBase {
  readonly kind: 'filter'
  readonly predicate: (value: any, key: string) => boolean
}

export interface PeekNode extends NodeBase {
  readonly kind: 'peek'
  readonly action: (value: any, key: string) => void
}

export interface MapValuesNode extends NodeBase {
  readonly kind: 'map-values'
  readonly mapper: (value: any, key: string) => unknown
}

export type JoinType = 'inner' | 'left'

/** KTable–KTable foreign-key join (KIP-213); inputs are `[left, right]`. */
export interface FkJoinNode extends NodeBase {
  readonly kind: 'fk-join'
  readonly joinType: JoinType
  readonly foreignKey: (leftValue: any) => string | null | undefined
  readonly joiner: (leftValue: any, rightValue: any) => unknown
}

/**
 * `groupBy(…).aggregate(…)` on a table (KTable semantics): each child row contributes its mapped value to
 * the group its `groupKey` names; the result is a table keyed by group key (src/operators/aggregate/).
 */
export interface AggregateNode extends NodeBase {
  readonly kind: 'aggregate'
  readonly groupKey: (value: any, key: string) => string | null | undefined
  readonly valueMapper: (value: any, key: string) => unknown
  readonly initializer: () => unknown
  readonly adder: (aggregate: any, value: any, groupKey: string) => unknown
  readonly subtractor: (aggregate: any, value: any, groupKey: string) => unknown
  /** Which DSL call built it, for describe: 'aggregate' | 'count' | 'reduce' | 'collect'. */
  readonly operation: string
  /** `collect`: the group's children as an ordered, bounded list, one store entry per child. */
  readonly collect?: CollectSpec
}

export interface CollectSpec {
  /** The order of the list (ties: child key); default the child key. */
  readonly orderBy?: (value: any, key: string) => string | number
  readonly descending: boolean
  /** At most this many children in the list (the first ones in order); `total` counts them all. */
  readonly limit: number
}

/** One row change handed to a stage: `value: null` = deleted; `oldValue: undefined` = previous value unknown. */
export interface StageItem<V = unknown> {
  readonly key: string
  readonly value: V | null
  readonly oldValue: V | null | undefined
  /** The task's input partition: the partition of the stage's own store entries for this key. */
  readonly partition: number
  /** Event time of the change that produced this item (epoch ms, design point 10); set by the runtimes. */
  readonly timestamp?: number
  /**
   * When that change was appended to its source topic (epoch ms, -1 = unknown): the Kafka timestamp of
   * its source record, the pair of `timestamp` (design point 10); set by the runtimes.
   */
  readonly appendedAt?: number
  /**
   * The external source record of that change (for a join re-triggered by its right side, the right
   * row's change, not the left row's own position); set by the runtimes.
   */
  readonly origin?: RecordOrigin
}

/** What a stage emits for one item: rows (possibly re-keyed, e.g. chunk ids) or a per-item failure. */
export type StageResult<O = unknown> = readonly StageRow<O>[] | StageFailure

export interface StageRow<O = unknown> {
  readonly key: string
  /** null = tombstone. */
  readonly value: O | null
  /** The key the row is partitioned by downstream (e.g. the entity key of a chunk); defaults to `key`. */
  readonly partitionKey?: string
}

export interface StageFailure {
  readonly error: unknown
}

/** What a stage may touch during a batch: only the stores it declared. */
export interface StageContext {
  /** A declared store; the stage prefetches the keys it reads itself (one round trip per batch). */
  store(name: string): StateStore
  readonly now: number
}

/** The contract govern / chunk / embed plug into: async and batched, at an I/O edge of the batch. */
export interface StageProcessor<V = unknown, O = unknown> {
  /** Returns one result per item, in item order. A throw is a transient failure: the batch is retried. */
  process(
    items: readonly StageItem<V>[],
    context: StageContext,
  ): Promise<readonly StageResult<O>[]> | readonly StageResult<O>[]
  /**
   * Optional, a look-ahead: prefetches what `process` would read for items with these keys. The
   * runtimes call it with the previous stage's items while that stage runs (keys usually pass through
   * a stage), so the two stages' store reads share one round trip. An optimisation only: `process`
   * still prefetches what it reads (already loaded keys cost nothing), and a failure here is ignored.
   */
  prefetchAhead?(
    items: readonly { readonly key: string; readonly partition: number }[],
    context: StageContext,
  ): Promise<void>
}

export interface StageNode extends NodeBase {
  readonly kind: 'stage'
  /** What the stage is, for describe: `govern`, `chunk`, `embed`, ... */
  readonly stageKind: string
  /** Store names this stage owns (each gets a changelog). */
  readonly stores: readonly string[]
  readonly processor: StageProcessor
}

/**
 * `govern`: the governance policy, the forgotten-subjects anti-join and the subject index, between
 * the joins and the chunk stage (src/operators/govern/). Its options live in the operator file.
 */
export interface GovernNode extends NodeBase {
  readonly kind: 'govern'
  readonly options: GovernNodeOptions
}

/** `chunk(…).embed(…)`: chunk → diff → embed with the services' embedder (src/operators/chunk-embed.ts). */
export interface ChunkEmbedNode extends NodeBase {
  readonly kind: 'chunk-embed'
  readonly options: ChunkEmbedNodeOptions
}

export interface SinkNode extends NodeBase {
  readonly kind: 'sink'
  readonly topic: string
  readonly encode: Encoder | undefined
  /** `toChunks`: values are chunk events, encoded by the services' chunk-event codec. */
  readonly chunkEvents?: boolean
}

export type TopologyNode =
  | TableSourceNode
  | FilterNode
  | MapValuesNode
  | PeekNode
  | FkJoinNode
  | AggregateNode
  | StageNode
  | GovernNode
  | ChunkEmbedNode
  | SinkNode

/** The frozen logical graph. */
export interface TopologyGraph {
  readonly applicationId: string
  readonly deadLetterTopic: string
  /** In build order: every node's inputs come before it. */
  readonly nodes: readonly TopologyNode[]
  /** The version chunk events record (an app's deployment sets it); default `v1`. */
  readonly version?: string
  /** Services of the RAG tail, unless the compiler is given others (the test driver's in-memory ones). */
  readonly services?: TailServices
}

export type NodeOf<K extends NodeKind> = Extract<TopologyNode, { kind: K }>

/** Kafka's rule for topic names; empty string when the name is legal, else what is wrong. */
export function topicNameProblem(name: unknown): string {
  if (typeof name !== 'string' || name === '') return 'required'
  if (name === '.' || name === '..') return `'${name}' is not a legal topic name`
  if (name.length > 249) return 'a topic name has at most 249 characters'
  if (!/^[a-zA-Z0-9._-]+$/.test(name))
    return `'${name}' is not a legal topic name (letters, digits, ".", "_" and "-" only)`
  return ''
}

/** Internal topic names: `<application>-<store>-changelog` as the store contract says. */
export function changelogTopic(applicationId: string, store: string): string {
  return `${applicationId}-${store}-changelog`
}

/** A CDC table's resets (truncates, completed snapshots) and the row deletes they cause: src/operators/table-reset.ts. */
export function tableResetTopic(applicationId: string, table: string): string {
  return `${applicationId}-${table}-reset-repartition`
}

export function subscriptionTopic(applicationId: string, join: string): string {
  return `${applicationId}-${join}-subscription-repartition`
}

export function responseTopic(applicationId: string, join: string): string {
  return `${applicationId}-${join}-response-repartition`
}

export function subscriptionStore(join: string): string {
  return `${join}-subscriptions`
}

/** Right rows whose topic partition is not the one their key hashes to, re-homed for the join. */
export function rightRepartitionTopic(applicationId: string, join: string): string {
  return `${applicationId}-${join}-right-repartition`
}

export function rightStore(join: string): string {
  return `${join}-right`
}

/** An aggregate's child changes (subtract old, add new), keyed by group key. */
export function groupByTopic(applicationId: string, aggregate: string): string {
  return `${applicationId}-${aggregate}-groupby-repartition`
}

/**
 * Rows of a forgotten subject that a table keeps for an aggregate (their keys, with the suppression
 * that removes them), sent by govern to the table's own task: each is then deleted as a row delete
 * would be, so it leaves every aggregate it contributed to. Keyed by row key, on the row's partition.
 */
export function forgetRepartitionTopic(applicationId: string, table: string): string {
  return `${applicationId}-${table}-forget-repartition`
}

/** Every task's copy of each deletion request (one record per partition), keyed by subject. */
export function deletionBroadcastTopic(applicationId: string, govern: string): string {
  return `${applicationId}-${govern}-deletions-broadcast-repartition`
}

export function forgottenSubjectsStore(govern: string): string {
  return `${govern}-forgotten-subjects`
}

export function subjectIndexStore(govern: string): string {
  return `${govern}-subject-index`
}
