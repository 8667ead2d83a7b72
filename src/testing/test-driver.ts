/**
 * The topology test driver: runs a topology in-process, without a broker, with the runtime's own
 * semantics — one task per partition calling the same compiled `process()`, stores prefetched per
 * batch, and every repartition record (foreign-key subscriptions and responses) routed back through
 * `process()` on the partition it was produced to, until the topology is quiet.
 *
 * @example
 * ```ts
 * import assert from 'node:assert/strict'
 * import { test } from 'node:test'
 * import { TopologyBuilder, TopologyTestDriver } from 'ragstream'
 *
 * test('an order picks up its product, and follows its changes', async () => {
 *   const builder = new TopologyBuilder({ applicationId: 'orders' })
 *   const products = builder.table<{ price: number }>('products', { name: 'products' })
 *   builder
 *     .table<{ product: string; qty: number }>('orders', { name: 'orders' })
 *     .join(products, { name: 'join-products', foreignKey: (o) => o.product, joiner: (o, p) => ({ ...o, price: p.price }) })
 *     .to('order-details')
 *
 *   const driver = new TopologyTestDriver(builder.build(), { partitions: 3 })
 *   await driver.pipe('products', 'p1', { price: 5 })
 *   await driver.pipe('orders', 'o1', { product: 'p1', qty: 2 })
 *   await driver.pipe('products', 'p1', { price: 6 })
 *   assert.deepEqual(driver.readTable('order-details').get('o1'), { product: 'p1', qty: 2, price: 6 })
 *   assert.deepEqual(driver.readDeadLetters(), [])
 * })
 * ```
 */
import type { ProcessorTopology, SinkRecord, SourceRecord } from '../runtime/task.ts'
import type { TailServices } from '../config/rag-services.ts'
import { MemoryStateStore } from '../state/memory-store.ts'
import { prefetchAll } from '../state/store.ts'
import { MemoryRagServices } from './memory-services.ts'
import { changelogTopic } from '../topology/graph.ts'
import { partitionForKey } from '../topology/partitioner.ts'
import type { Topology } from '../topology/topology.ts'

export interface TestDriverOptions {
  /** Partitions of every source and internal topic (one task each). Default 4. */
  readonly partitions?: number
  /** Partitions per sink topic; default `partitions`. */
  readonly sinkPartitions?: Readonly<Record<string, number>>
  /** The clock handed to `process()` (ms); advance it with `advanceTime`. Default 0. */
  readonly startTime?: number
  /**
   * Services of the RAG tail (`govern`, `chunk(…).embed()`, `toChunks`). Default: in-memory ones
   * (`MemoryRagServices`: hashing embedder, in-memory embedding cache, JSON codecs), whatever services
   * the topology was built with, so a test needs nothing running. Pass real ones to test against them.
   */
  readonly services?: TailServices
}

/** A record to pipe: keys and values as strings, Buffers, or (values) anything JSON-encodable. */
export interface TestInputRecord {
  readonly topic: string
  readonly key: string | Buffer | null
  /** null = tombstone; a Buffer is sent as is; a string as UTF-8; anything else as JSON. */
  readonly value: unknown
  /** Default: Kafka's default partitioner over the key bytes (partition 0 for a null key). */
  readonly partition?: number
  readonly timestamp?: bigint
  readonly headers?: Readonly<Record<string, string>>
}

/** A record the topology produced, as a consumer would see it. */
export interface TestOutputRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly key: string | null
  /** The value parsed as JSON (or the UTF-8 string if it is not JSON); null for a tombstone. */
  readonly value: unknown
  readonly headers: Readonly<Record<string, string>>
  /** The task (input partition) whose batch produced the record. */
  readonly task: number
  readonly rawKey: Buffer | null
  readonly rawValue: Buffer | null
  /**
   * The record's timestamp: its event time, as the runtime produces it (Kafka Streams' rules: a table
   * source's change time, a join's later input, carried through every operator); the driver's clock
   * for records without one (changelogs).
   */
  readonly timestamp: bigint
  /**
   * When the change whose event time `timestamp` is was appended to its source topic (epoch ms): the
   * piped record's timestamp (what a LogAppendTime topic would stamp), the joined row's when a join
   * took that row's later change. A chunk event carries it as `lineage.change.appended_at_ms`: the
   * split of freshness into capture (`timestamp` → here) and ragstream (here → visible). Undefined
   * when unknown and for records no input led to (changelogs).
   */
  readonly appendedAt: number | undefined
  /**
   * The source record whose change led to this output, through any internal topics (what its dead
   * letters name as `ragstream.source.*`); undefined for records no input led to (changelogs).
   */
  readonly source: TestRecordOrigin | undefined
}

/** Where a record came from: an input record's topic, partition, offset and key. */
export interface TestRecordOrigin {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly key: string | null
}

function toBytes(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null
  if (Buffer.isBuffer(value)) return value
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  return Buffer.from(JSON.stringify(value), 'utf8')
}

function parseValue(bytes: Buffer | null): unknown {
  if (bytes === null) return null
  const text = bytes.toString('utf8')
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** An output record whose value is parsed on first read (changelogs and repartition topics are rarely read). */
class OutputRecord implements TestOutputRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly key: string | null
  readonly headers: Readonly<Record<string, string>>
  readonly task: number
  readonly rawKey: Buffer | null
  readonly rawValue: Buffer | null
  readonly timestamp: bigint
  readonly appendedAt: number | undefined
  readonly source: TestRecordOrigin | undefined
  #value: unknown = undefined
  #parsed = false

  constructor(
    record: SinkRecord,
    offset: bigint,
    headers: Readonly<Record<string, string>>,
    task: number,
    now: number,
  ) {
    this.topic = record.topic
    this.timestamp = record.timestamp ?? BigInt(now)
    this.appendedAt = record.appendedAt !== undefined && record.appendedAt >= 0 ? record.appendedAt : undefined
    this.partition = record.partition
    this.offset = offset
    this.key = record.key === null ? null : record.key.toString('utf8')
    this.headers = headers
    this.task = task
    this.rawKey = record.key
    this.rawValue = record.value
    const source = record.source
    this.source =
      source === undefined
        ? undefined
        : {
            topic: source.topic,
            partition: source.partition,
            offset: source.offset,
            key: source.key === null ? null : source.key.toString('utf8'),
          }
  }

  get value(): unknown {
    if (!this.#parsed) {
      this.#value = parseValue(this.rawValue)
      this.#parsed = true
    }
    return this.#value
  }
}

/** A guard against topologies that feed themselves forever. */
const MAX_ROUNDS = 100_000

export class TopologyTestDriver {
  readonly topology: Topology
  /** The compiled form the driver runs; the Kafka runtime runs the same. */
  readonly processor: ProcessorTopology
  readonly partitions: number
  /** The services the topology runs with (the test's, or the in-memory defaults). */
  readonly services: TailServices
  readonly #ownsServices: boolean
  readonly #stores = new Map<string, MemoryStateStore>()
  readonly #internalTopics: ReadonlySet<string>
  readonly #sourceTopics: ReadonlySet<string>
  /** Every topic the topology reads, writes or owns. */
  readonly #topics: ReadonlySet<string>
  /** Next offset per topic-partition, for inputs, outputs and changelogs alike. */
  readonly #offsets = new Map<string, bigint>()
  readonly #outputs = new Map<string, TestOutputRecord[]>()
  readonly #read = new Map<string, number>()
  #now: number
  #queue: Promise<void> = Promise.resolve()

  constructor(topology: Topology, options: TestDriverOptions = {}) {
    this.topology = topology
    this.partitions = options.partitions ?? 4
    this.#ownsServices = options.services === undefined
    this.services = options.services ?? new MemoryRagServices()
    this.processor = topology.compile({
      partitions: this.partitions,
      sinkPartitions: options.sinkPartitions,
      services: this.services,
    })
    for (const name of this.processor.storeNames) this.#stores.set(name, new MemoryStateStore(name))
    this.#sourceTopics = new Set(this.processor.sourceTopics)
    this.#topics = new Set([...this.processor.sourceTopics, ...this.processor.topics.map((t) => t.name)])
    this.#internalTopics = new Set(this.processor.topics.filter((t) => t.role === 'repartition').map((t) => t.name))
    this.#now = options.startTime ?? 0
  }

  /** Pipes one record and runs the topology until it is quiet (all repartition records processed). */
  pipe(
    topic: string,
    key: string | Buffer | null,
    value: unknown,
    options: Omit<TestInputRecord, 'topic' | 'key' | 'value'> = {},
  ): Promise<void> {
    return this.pipeBatch([{ topic, key, value, ...options }])
  }

  /**
   * Pipes records as ONE batch per task (partition), as the runtime does when they arrive together:
   * the batch's keys are prefetched once, then processed in order.
   */
  pipeBatch(records: readonly TestInputRecord[]): Promise<void> {
    const run = this.#queue.then(() => this.#pipeBatch(records))
    this.#queue = run.catch(() => {})
    return run
  }

  async #pipeBatch(records: readonly TestInputRecord[]): Promise<void> {
    const batch = records.map((input): SourceRecord => {
      if (!this.#sourceTopics.has(input.topic) || this.#internalTopics.has(input.topic)) {
        const inputs = [...this.#sourceTopics].filter((t) => !this.#internalTopics.has(t))
        throw new Error(
          `topology '${this.topology.applicationId}' does not read topic '${input.topic}'; it reads: ${inputs.join(', ')}`,
        )
      }
      const key = input.key === null ? null : Buffer.isBuffer(input.key) ? input.key : Buffer.from(input.key, 'utf8')
      const partition = input.partition ?? (key === null ? 0 : partitionForKey(key, this.partitions))
      if (!Number.isInteger(partition) || partition < 0 || partition >= this.partitions)
        throw new Error(`partition ${partition} is outside 0..${this.partitions - 1}`)
      const headers = new Map(Object.entries(input.headers ?? {}).map(([k, v]) => [k, Buffer.from(v, 'utf8')]))
      return {
        topic: input.topic,
        partition,
        offset: this.#nextOffset(input.topic, partition),
        timestamp: input.timestamp ?? BigInt(this.#now),
        key,
        value: toBytes(input.value),
        headers,
      }
    })
    let pending = batch
    for (let round = 0; pending.length > 0; round++) {
      if (round === MAX_ROUNDS)
        throw new Error('the topology did not become quiet: repartition records keep producing each other')
      pending = await this.#runRound(pending)
    }
  }

  /** One batch per partition (in order of first appearance); returns the repartition records produced. */
  async #runRound(records: readonly SourceRecord[]): Promise<SourceRecord[]> {
    const byPartition = new Map<number, SourceRecord[]>()
    for (const record of records) {
      const list = byPartition.get(record.partition) ?? []
      list.push(record)
      byPartition.set(record.partition, list)
    }
    const next: SourceRecord[] = []
    for (const batch of byPartition.values()) {
      await this.processor.prepare?.(batch)
      await prefetchAll(
        this.processor.prefetchKeys(batch),
        this.#stores,
        (name) => new Error(`topology prefetches unknown store "${name}"`),
      )
      const out = await this.processor.process(batch, this.#stores, this.#now)
      for (const store of this.#stores.values()) {
        const checkpoints = new Map<number, bigint>()
        for (const change of store.drainChangelog()) {
          const topic = changelogTopic(this.topology.applicationId, store.name)
          this.#append(
            { topic, partition: change.partition, key: Buffer.from(change.key, 'utf8'), value: change.value },
            batch[0].partition,
          )
          checkpoints.set(change.partition, this.#offsets.get(`${topic}\u0000${change.partition}`)!)
        }
        await store.flush(checkpoints)
      }
      for (const record of out) {
        const offset = this.#append(record, batch[0].partition)
        if (this.#internalTopics.has(record.topic)) {
          next.push({
            topic: record.topic,
            partition: record.partition,
            offset,
            timestamp: record.timestamp ?? BigInt(this.#now),
            key: record.key,
            value: record.value,
            headers: record.headers ?? new Map(),
          })
        }
      }
    }
    return next
  }

  #nextOffset(topic: string, partition: number): bigint {
    const id = `${topic}\u0000${partition}`
    const offset = this.#offsets.get(id) ?? 0n
    this.#offsets.set(id, offset + 1n)
    return offset
  }

  #append(record: SinkRecord, task: number): bigint {
    const offset = this.#nextOffset(record.topic, record.partition)
    const headers: Record<string, string> = {}
    for (const [k, v] of record.headers ?? []) headers[k] = v.toString('utf8')
    const list = this.#outputs.get(record.topic) ?? []
    list.push(new OutputRecord(record, offset, headers, task, this.#now))
    this.#outputs.set(record.topic, list)
    return offset
  }

  /**
   * Throws unless the topology has `topic` (reads, writes or owns it), listing the topics it has: an
   * assertion on a misspelled topic must fail, not pass on an empty list.
   */
  #known(topic: string): void {
    if (this.#topics.has(topic)) return
    throw new Error(
      `topology '${this.topology.applicationId}' has no topic '${topic}'; its topics: ${[...this.#topics].join(', ')}`,
    )
  }

  /** Records produced to `topic` since the last `readOutput(topic)`, in produce order. */
  readOutput(topic: string): TestOutputRecord[] {
    this.#known(topic)
    const all = this.#outputs.get(topic) ?? []
    const from = this.#read.get(topic) ?? 0
    this.#read.set(topic, all.length)
    return all.slice(from)
  }

  /** Every record ever produced to `topic` (internal and changelog topics included). */
  allOutput(topic: string): TestOutputRecord[] {
    this.#known(topic)
    return [...(this.#outputs.get(topic) ?? [])]
  }

  /** `topic` read as a table: the latest value per key, tombstones applied. */
  readTable(topic: string): Map<string, unknown> {
    this.#known(topic)
    const table = new Map<string, unknown>()
    for (const record of this.#outputs.get(topic) ?? []) {
      if (record.key === null) continue
      if (record.value === null) table.delete(record.key)
      else table.set(record.key, record.value)
    }
    return table
  }

  /** Records the topology dead-lettered since the last call. */
  readDeadLetters(): TestOutputRecord[] {
    return this.readOutput(this.topology.graph.deadLetterTopic)
  }

  /** A store's committed contents across partitions, values parsed as JSON. */
  readStore(name: string): Map<string, unknown> {
    const store = this.#stores.get(name)
    if (store === undefined) throw new Error(`no store '${name}' (stores: ${[...this.#stores.keys()].join(', ')})`)
    const out = new Map<string, unknown>()
    for (const partition of store.partitions()) {
      for (const [key, value] of store.entries(partition)) out.set(key, parseValue(value))
    }
    return out
  }

  /** The in-memory store behind a store name, for lower-level inspection. */
  store(name: string): MemoryStateStore | undefined {
    return this.#stores.get(name)
  }

  /**
   * Simulates losing every store (a restart with an empty Redis): each store partition is rebuilt
   * from its changelog topic from offset 0, as the runtime restores it. Processing afterwards must
   * behave exactly as without the loss — state lives only in changelogged stores.
   */
  restoreStoresFromChangelogs(): Promise<void> {
    const run = this.#queue.then(async () => {
      for (const [name, old] of this.#stores) {
        await old.close()
        const store = new MemoryStateStore(name)
        const topic = changelogTopic(this.topology.applicationId, name)
        const byPartition = new Map<number, { key: string; value: Buffer | null }[]>()
        for (const record of this.#outputs.get(topic) ?? []) {
          const list = byPartition.get(record.partition) ?? []
          list.push({ key: record.key!, value: record.rawValue })
          byPartition.set(record.partition, list)
        }
        for (const [partition, records] of byPartition)
          await store.restore(partition, records, this.#offsets.get(`${topic}\u0000${partition}`)!)
        this.#stores.set(name, store)
      }
    })
    this.#queue = run.catch(() => {})
    return run
  }

  /**
   * Moves the driver's clock (the wall-clock time `process()` gets, and the timestamp of piped records
   * that set none) forward by `ms`.
   */
  advanceTime(ms: number): void {
    this.#now += ms
  }

  /** The driver's clock (epoch ms as the test set it): the default timestamp of the next piped record. */
  get now(): number {
    return this.#now
  }

  /** Closes the stores, and the services when the driver made them (a test closes its own). */
  async close(): Promise<void> {
    await this.#queue
    for (const store of this.#stores.values()) await store.close()
    if (this.#ownsServices) await this.services.close()
  }
}
