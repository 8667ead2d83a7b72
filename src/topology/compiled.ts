/**
 * What an operator file provides for its node kind (validation, stores, internal topics, describe,
 * compile) and what compile hands it. Operators compose once into nested closures over one mutable
 * `RecordScope`, so the per-record path interprets nothing and allocates little.
 */
import type { TailServices } from '../config/rag-services.ts'
import type { RecordOrigin, SinkRecord, SourceRecord } from '../runtime/task.ts'
import type { StateStore } from '../state/store.ts'
import type { DecodedRecord, StageItem, StageNode, TopologyGraph, TopologyNode } from './graph.ts'

/** A row change flowing between compiled nodes. `oldValue: undefined` = unknown, `null` = absent. */
export type ChangeHandler = (key: string, oldValue: unknown, newValue: unknown) => void

/**
 * Per-record state shared by every closure of one compiled instance. Compile resets it with
 * `beginRecord` before each record; user code runs behind `userFunction` (src/topology/user-code.ts),
 * so a throw there is that record's failure and any other throw fails the batch.
 */
export interface RecordScope {
  out: SinkRecord[]
  stores: ReadonlyMap<string, StateStore>
  record: SourceRecord
  /** The external source record whose change led to `record` (itself unless it is internal): stamped on every output. */
  origin: RecordOrigin
  /**
   * Event time of the change being processed (epoch ms), Kafka Streams' rules: the record's timestamp,
   * a table source's change time (Debezium `ts_ms`), a join's later of its two inputs (`emitAt`).
   * Every output is produced with it as its Kafka timestamp; stages get it per item.
   */
  timestamp: number
  /**
   * When the change `timestamp` belongs to was appended to its source topic (epoch ms; -1 = unknown):
   * the Kafka record timestamp of that change's external source record. It pairs with `timestamp`
   * (a join that takes a row's later time takes that row's append time too), so the chunk event can
   * split freshness into capture (event → append) and ragstream (append → visible).
   */
  appendedAt: number
  /** Set by stages whose rows are partitioned by another key (chunks by entity). */
  partitionKey: string | null
  /** Store writes of the current record, reverted if it fails further down. */
  readonly undo: UndoLog
  /** The value the source table just stored and its bytes, so a sink writing it unchanged reuses them. */
  encodedValue: unknown
  encodedBytes: Buffer | null
  now: number
}

/** A new scope for one compiled instance. */
export function newRecordScope(): RecordScope {
  return {
    out: [],
    stores: new Map(),
    record: undefined as unknown as SourceRecord,
    origin: undefined as unknown as RecordOrigin,
    timestamp: 0,
    appendedAt: NO_APPEND_TIME,
    partitionKey: null,
    undo: new UndoLog(),
    encodedValue: undefined,
    encodedBytes: null,
    now: 0,
  }
}

/** `RecordScope.appendedAt` when the append time is unknown. */
export const NO_APPEND_TIME = -1

/** The append time an origin names: its Kafka timestamp, or unknown (-1) when it has none. */
export function originAppendTime(origin: RecordOrigin): number {
  const at = Number(origin.timestamp)
  return at >= 0 ? at : NO_APPEND_TIME
}

/** The one place a record's processing starts: everything per-record in the scope is reset here. */
export function beginRecord(
  scope: RecordScope,
  record: SourceRecord,
  origin: RecordOrigin = record,
  timestamp: number = Number(record.timestamp),
  appendedAt: number = originAppendTime(origin),
): void {
  scope.record = record
  scope.origin = origin
  scope.timestamp = timestamp
  scope.appendedAt = appendedAt
  scope.partitionKey = null
  scope.undo.clear()
  scope.encodedValue = undefined
}

/**
 * Runs `emit` at event time `timestamp` when it is later than the record's (a join's result takes the
 * later of its inputs' times), with `appendedAt`, the append time of the change that time belongs to
 * (the pair stays one change's): consumers see them in `scope.timestamp` and `scope.appendedAt`, and
 * the outputs produced meanwhile carry them (the event time as their Kafka timestamp).
 */
export function emitAt(scope: RecordScope, timestamp: number, appendedAt: number, emit: () => void): void {
  if (!(timestamp > scope.timestamp)) {
    emit()
    return
  }
  const saved = scope.timestamp
  const savedAppend = scope.appendedAt
  const mark = scope.out.length
  scope.timestamp = timestamp
  scope.appendedAt = appendedAt
  try {
    emit()
  } finally {
    scope.timestamp = saved
    scope.appendedAt = savedAppend
  }
  const at = BigInt(timestamp)
  for (let i = mark; i < scope.out.length; i++) {
    const output = scope.out[i] as { timestamp?: bigint; appendedAt?: number }
    output.timestamp ??= at
    output.appendedAt ??= appendedAt
  }
}

/**
 * The one undo log: the values a record's store writes replaced, so a record failing further down
 * (a dead letter) leaves the stores as they were before it. Kept as parallel arrays reused from
 * record to record, so remembering a write allocates nothing on the hot path.
 */
export class UndoLog {
  readonly #stores: StateStore[] = []
  readonly #partitions: number[] = []
  readonly #keys: string[] = []
  readonly #values: (Buffer | undefined)[] = []
  #length = 0

  /** Call before a write: `value` is what the key held (undefined = absent). */
  remember(store: StateStore, partition: number, key: string, value: Buffer | undefined): void {
    const i = this.#length++
    this.#stores[i] = store
    this.#partitions[i] = partition
    this.#keys[i] = key
    this.#values[i] = value
  }

  /** Puts every remembered value back, newest first, and empties the log. */
  revert(): void {
    for (let i = this.#length - 1; i >= 0; i--) {
      const value = this.#values[i]
      if (value === undefined) this.#stores[i].delete(this.#partitions[i], this.#keys[i])
      else this.#stores[i].put(this.#partitions[i], this.#keys[i], value)
    }
    this.clear()
  }

  clear(): void {
    this.#length = 0
  }

  /** Drops the references kept for reuse (end of a batch): a pooled instance must not pin old values. */
  release(): void {
    this.#length = 0
    this.#stores.length = 0
    this.#partitions.length = 0
    this.#keys.length = 0
    this.#values.length = 0
  }
}

/** How records of one topic enter the compiled graph. */
export interface TopicEntry {
  /** Node named in dead letters for decode failures. */
  readonly node: string
  decode(record: SourceRecord): DecodedRecord
  handle(record: SourceRecord, decoded: DecodedRecord): void
  /**
   * For an internal topic whose records pack several items (e.g. the FK join's subscriptions: one record
   * per partition per batch, so a batch's transaction carries a few records, not one per left row): the items as
   * records of their own (the pack's topic, partition and offset; each item's key and value). Each is
   * then decoded, prefetched, handled and — on failure — dead-lettered on its own, exactly as if it
   * had been a record of the topic.
   */
  unpack?(record: SourceRecord): readonly SourceRecord[]
}

/**
 * A value getter: how a join reads its input table's current value — the stored bytes of the
 * materialized root (a table source, or a join whose result another join reads) through the
 * filter/mapValues chain above it.
 */
export interface ValueGetter {
  /** The root's store, keyed like the table. */
  readonly store: string
  /** Topics whose records change the root, keyed (once decoded) like the table: a consumer prefetches its own stores on them. */
  readonly topics: readonly string[]
  /** The chain's value for these stored bytes (null = filtered out / absent). */
  get(bytes: Buffer | undefined, key: string): unknown
  /**
   * True when `get` is plain JSON decoding of the stored bytes (the root itself, no filter/mapValues
   * above it): the stored bytes are then the value's JSON, and a join may pass them on unparsed.
   */
  readonly raw?: boolean
}

/** A stage's per-batch buffer: items and the records they came from, drained after the sync pass. */
export interface StageBuffer {
  readonly node: StageNode
  readonly items: StageItem[]
  readonly origins: SourceRecord[]
  readonly emit: ChangeHandler
}

export interface CompileEnv {
  readonly graph: TopologyGraph
  readonly partitions: number
  /** The RAG tail's services: the compile options', else the graph's; undefined when neither has any. */
  readonly services: TailServices | undefined
  readonly scope: RecordScope
  /** Fan-out to every consumer of `node`'s output. */
  downstream(node: string): ChangeHandler
  addTopic(topic: string, entry: TopicEntry): void
  /**
   * Records of `topic` read `store` at their decoded key, or at `keyOf(decoded)` (null = no read):
   * prefetched once per batch, with every other read of the batch.
   */
  addPrefetch(topic: string, store: string, keyOf?: (decoded: DecodedRecord) => string | null): void
  /** Records of `topic` scan `store` under `prefixOf(decoded)` (see `groupPrefix`; null = no scan). */
  addPrefetchScan(topic: string, store: string, prefixOf: (decoded: DecodedRecord) => string | null): void
  getter(node: string): ValueGetter
  sinkPartitions(topic: string): number
  addStage(buffer: StageBuffer): void
  /** State an operator keeps for the length of one batch (see BatchState). */
  addBatchState(state: BatchState): void
}

/**
 * Per-batch operator state: e.g. a join's parsed reverse index, updated in memory by every record of
 * the batch and written to its store once at the end, instead of once per record.
 */
export interface BatchState {
  /** Writes what the batch changed to the stores; called once after the batch's last record. */
  flush(): void
  /** Forgets everything (after the batch, or when it failed). */
  reset(): void
}

export interface InternalTopic {
  readonly name: string
  readonly role: 'changelog' | 'repartition'
  readonly store?: string
  /** What the topic carries, for describe. */
  readonly purpose: string
  readonly config: Readonly<Record<string, string>>
}

export interface PhysicalNode {
  readonly type: 'source' | 'processor' | 'sink'
  readonly name: string
  readonly topics?: readonly string[]
  readonly topic?: string
  readonly stores?: readonly string[]
  /** Extra facts for describe, e.g. `join: left`. */
  readonly detail?: string
  readonly next: readonly string[]
}

/** A logical node as physical nodes: `entries[i]` receives input slot i, `exit` feeds consumers. */
export interface PhysicalPart {
  readonly nodes: readonly PhysicalNode[]
  readonly entries: readonly string[]
  readonly exit: string | null
}

/** The physical part of a stateless one-input node: one processor, named like the node, with no stores. */
export function singleProcessor(node: { readonly name: string }): PhysicalPart {
  return {
    nodes: [{ type: 'processor', name: node.name, stores: [], next: [] }],
    entries: [node.name],
    exit: node.name,
  }
}

export type ProblemSink = (field: string, message: string) => void

export interface NodeKindSpec<N extends TopologyNode> {
  /**
   * What the graph-wide code (validate, compile, topics) asks about a kind instead of branching on it:
   * - `stateful`: its name is its store and changelog identity, so it must be named explicitly;
   * - `role`: 'source' (rows enter here: a topology needs one), 'sink' (rows leave: a topology needs
   *   one; sinks read no old values);
   * - `table`: 'root' when a join can read the node as a materialized table (its store holds the
   *   rows), 'chain' when it passes a table through (filter, mapValues), absent otherwise;
   * - `readsTables`: it reads its inputs as tables through their getters (a join), so a table root
   *   it reads must be materialized;
   * - `emitsStoredValue`: its output value is the one it just stored (scope.encodedValue, with the
   *   bytes in scope.encodedBytes), so a consumer may reuse the bytes.
   */
  readonly facts: {
    readonly stateful: boolean
    readonly role?: 'source' | 'sink'
    readonly table?: 'root' | 'chain'
    readonly readsTables?: boolean
    readonly emitsStoredValue?: boolean
  }
  /** External topics it reads and writes (not internal ones): they become the topology's source and sink topics. */
  externalTopics?(
    node: N,
    graph: TopologyGraph,
  ): { readonly reads: readonly string[]; readonly writes: readonly string[] }
  /** Stores owned by other nodes that it reads or writes (validate checks they exist; the runtime hands them over). */
  foreignStores?(node: N, graph: TopologyGraph): readonly string[]
  /** Per-batch I/O its records need before they can be decoded (e.g. Avro writer schemas). */
  preparer?(node: N): { readonly topic: string; prepare(records: readonly SourceRecord[]): Promise<void> } | undefined
  /** Node-local rules; graph-wide ones (names, inputs, cycles) live in validate.ts. */
  validate(node: N, graph: TopologyGraph, problem: ProblemSink): void
  stores(node: N, graph: TopologyGraph): readonly string[]
  internalTopics(node: N, graph: TopologyGraph): readonly InternalTopic[]
  physical(node: N, graph: TopologyGraph): PhysicalPart
  /** Present on kinds a join can read as a table; `upstream` gives the getter of an input. */
  readonly getter?: (node: N, graph: TopologyGraph, upstream: (input: string) => ValueGetter) => ValueGetter
  /** One handler per input slot. */
  compile(node: N, env: CompileEnv): readonly ChangeHandler[]
}

export const CHANGELOG_CONFIG: Readonly<Record<string, string>> = Object.freeze({ 'cleanup.policy': 'compact' })
/** As Kafka Streams: never time-deleted; a runtime may purge consumed repartition records. */
export const REPARTITION_CONFIG: Readonly<Record<string, string>> = Object.freeze({
  'cleanup.policy': 'delete',
  'retention.ms': '-1',
})
