/**
 * The contract between a compiled topology (what to do with records) and the runtimes that drive it
 * (the Kafka runtime with exactly-once transactions, and the in-memory test driver). Both runtimes
 * call the same `process`, so a topology behaves identically under test and in production.
 *
 * Partitioning: task p owns partition p of every source topic (inputs are co-partitioned; internal
 * repartition topics are created with the inputs' partition count) and partition p of every store.
 */
import type { PrefetchPlan, StateStore } from '../state/store.ts'

/** A record read from a source topic partition (an external input or an internal repartition topic). */
export interface SourceRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  /**
   * The record's Kafka timestamp. On an internal topic it is the event time of the change it carries
   * (the runtime produces every output with its event time); a pack item's is its own (record-pack.ts).
   */
  readonly timestamp: bigint
  readonly key: Buffer | null
  readonly value: Buffer | null
  readonly headers: ReadonlyMap<string, Buffer>
  /** For an item of a record pack: the origin the pack carried for it (see src/runtime/origin.ts). */
  readonly origin?: RecordOrigin
  /**
   * For an item of a record pack: the append time the pack carried for its change (epoch ms, -1 =
   * unknown; see SinkRecord.appendedAt). Absent: its origin's timestamp.
   */
  readonly appendedAt?: number
}

/**
 * The external source record whose change led to a record (through internal repartition topics):
 * what a dead letter names as `ragstream.source.*` (src/runtime/origin.ts). A SourceRecord of an
 * external topic is its own origin.
 */
export interface RecordOrigin {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly timestamp: bigint
  readonly key: Buffer | null
}

/** A record's position: what a dead letter names as `ragstream.input.*` when the failed record was internal. */
export interface RecordPosition {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
}

/** A record to produce inside the batch's transaction. The topology decides the partition. */
export interface SinkRecord {
  readonly topic: string
  readonly partition: number
  readonly key: Buffer | null
  readonly value: Buffer | null
  readonly headers?: ReadonlyMap<string, Buffer>
  /**
   * Event time (epoch ms), produced as the record's Kafka timestamp: the time of the change it derives
   * from, by Kafka Streams' rules (design point 10), set by the compiled topology. Absent = produce time.
   */
  readonly timestamp?: bigint
  /**
   * The external source record this output derives from (its origin, through internal topics), set by
   * the compiled topology: the runtime names it in the dead letter that replaces an output it cannot
   * produce (too large), and internal records carry it on. Never produced itself.
   */
  readonly source?: RecordOrigin
  /** The internal record the topology was processing when it produced this output, when that was not the source. */
  readonly input?: RecordPosition
  /**
   * When the change whose event time `timestamp` is was appended to its source topic (epoch ms, -1 =
   * unknown), set by the compiled topology: usually its origin's Kafka timestamp, the joined row's
   * when a join took that row's later time. Internal records carry it on; never produced itself.
   */
  readonly appendedAt?: number
}

export type TopicRole = 'source' | 'sink' | 'changelog' | 'repartition' | 'dead-letter'

/** A topic the topology reads or writes, with the settings the runtime creates it with when internal. */
export interface TopicSpec {
  readonly name: string
  readonly role: TopicRole
  /** Undefined for external topics: the runtime reads the partition count from the broker. */
  readonly partitions?: number
  /** Broker topic configs, e.g. `{ 'cleanup.policy': 'compact' }` for changelogs. */
  readonly config: Readonly<Record<string, string>>
  /** For changelogs: the store whose changelog this is. */
  readonly store?: string
}

export interface ProcessorTopology {
  /** Consumer group id, transactional-id prefix and internal topic prefix. */
  readonly applicationId: string
  /** Topics the runtime subscribes to: task p reads partition p of each. */
  readonly sourceTopics: readonly string[]
  /** Every topic involved; the runtime creates the internal ones (changelog, repartition, dead-letter) if missing. */
  readonly topics: readonly TopicSpec[]
  readonly storeNames: readonly string[]
  /**
   * Optional, added after the first contract: per-batch I/O to run before `prefetchKeys` (e.g. loading
   * the Avro writer schemas the batch's records name, so decoding stays synchronous). Runtimes await
   * it when present; a topology that has it refuses `prefetchKeys` for a batch it did not prepare.
   */
  prepare?(records: readonly SourceRecord[]): Promise<void>
  /**
   * The keys this batch will read, per store and store partition: prefetched in one round trip per
   * store partition. A `PrefetchPlan` also carries the prefixes the batch scans; load it with
   * `prefetchAll` (src/state/store.ts), which handles both.
   */
  prefetchKeys(records: readonly SourceRecord[]): Map<string, Map<number, Set<string>>> | PrefetchPlan
  /**
   * Processes one batch against prefetched stores and returns the records to produce (outputs,
   * repartition records, dead letters). Per-record failures become dead-letter records; a throw means
   * a transient failure (the runtime aborts the transaction and retries the batch from committed offsets).
   */
  process(records: readonly SourceRecord[], stores: ReadonlyMap<string, StateStore>, now: number): Promise<SinkRecord[]>
}
