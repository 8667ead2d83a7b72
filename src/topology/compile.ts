/**
 * Compiles a validated graph into the runtime contract (src/runtime/task.ts). Operators are composed
 * once into closures; `process` walks each record through them with no interpretation. A compiled
 * instance (closures + one mutable scope) serves one `process` call at a time; concurrent calls
 * (tasks awaiting a stage's I/O) each take their own instance from a small pool.
 */
import type { TailServices } from '../config/rag-services.ts'
import { quotesWithheld, RagstreamError, type ErrorCode } from '../errors.ts'
import { DEAD_LETTER_TOPIC_CONFIG } from '../governance/forget/dead-letter.ts'
import { DEAD_LETTER_HEADERS } from '../runtime/dead-letter.ts'
import {
  APPENDED_HEADER,
  appendTimeHeader,
  encodeAppendTime,
  encodeOrigin,
  ORIGIN_HEADER,
  ORIGIN_KEY_MAX_BYTES,
  originHeader,
} from '../runtime/origin.ts'
import type {
  ProcessorTopology,
  RecordOrigin,
  RecordPosition,
  SinkRecord,
  SourceRecord,
  TopicSpec,
} from '../runtime/task.ts'
import { PrefetchPlan, type StateStore } from '../state/store.ts'
import {
  beginRecord,
  newRecordScope,
  originAppendTime,
  type BatchState,
  type ChangeHandler,
  type CompileEnv,
  type RecordScope,
  type StageBuffer,
  type TopicEntry,
  type ValueGetter,
} from './compiled.ts'
import { RecordFailure, recordFailure } from './user-code.ts'
import type { DecodedRecord, StageContext, StageNode, StageResult, TopologyGraph, TopologyNode } from './graph.ts'
import { externalReads, externalWrites, kindOf, preparerOf } from './node-kinds.ts'

export interface CompileOptions {
  /** Partition count of the (co-partitioned) source topics; internal topics are created with it. */
  readonly partitions: number
  /** Partition count per sink topic as the broker reports it; defaults to `partitions`. */
  readonly sinkPartitions?: Readonly<Record<string, number>>
  /** Services of the RAG tail (embedder, codecs); default the ones the topology was built with. */
  readonly services?: TailServices
}

/* Dead-letter record: key and value are the failed record's own bytes, at its partition; headers: see
 * runtime/dead-letter.ts (`ragstream.source.*` name the record's origin, `ragstream.input.*` the failed
 * record itself when it is an internal one). */
export { DEAD_LETTER_HEADERS }

const MAX_MESSAGE = 1000

/** A stage broke its contract: not the record's fault, and retrying cannot help (recovery 'stop'). */
function contractViolation(stage: string, what: string, hint: string): RagstreamError {
  return new RagstreamError('RS_STAGE_CONTRACT_VIOLATED', `stage '${stage}' ${what}`, {
    context: { node: stage },
    hint,
  })
}

/**
 * The dead-letter header's message, which must never quote the record (it may hold personal data, and
 * headers are read by people who may not read the record): ragstream's own messages name fields and
 * positions, never values; any other error's message keeps its shape with every quoted part withheld
 * (V8's `Unexpected token 'j', "{"email":"jane@…" is not valid JSON`).
 */
export function deadLetterMessage(error: unknown): string {
  if (error instanceof RagstreamError) return error.message.slice(0, MAX_MESSAGE)
  const text = error instanceof Error ? quotesWithheld(error.message) : ''
  return (text === '' ? (error instanceof Error ? error.name : typeof error) : text).slice(0, MAX_MESSAGE)
}

class DecodeFailure {
  readonly error: unknown
  constructor(error: unknown) {
    this.error = error
  }
}

/** A packed record's items, each decoded on its own. */
class Unpacked {
  readonly items: readonly SourceRecord[]
  readonly rows: readonly (DecodedRecord | DecodeFailure)[]
  constructor(items: readonly SourceRecord[], rows: readonly (DecodedRecord | DecodeFailure)[]) {
    this.items = items
    this.rows = rows
  }
}

type DecodedRow = DecodedRecord | DecodeFailure | Unpacked

interface Instance {
  readonly scope: RecordScope
  readonly topics: ReadonlyMap<string, TopicEntry>
  readonly stages: readonly StageBuffer[]
  readonly batchStates: readonly BatchState[]
  readonly prefetch: ReadonlyMap<string, readonly PrefetchRead[]>
}

/** One store read the records of a topic make: a key (the decoded key, or `keyOf`'s), or a prefix scan. */
interface PrefetchRead {
  readonly store: string
  readonly keyOf?: (decoded: DecodedRecord) => string | null
  readonly scan: boolean
}

function noop(): void {}

/** What compile adds to an output once an operator pushed it (operators push fresh objects). */
type Stamped = { source?: RecordOrigin; input?: RecordPosition; timestamp?: bigint; appendedAt?: number }

/**
 * Stamps the outputs `out[from..]` the record produced with its origin (and the record's position,
 * when it is not the origin itself): the runtime names them in dead letters, internal records carry
 * them on; and with the record's event time (unless a join stamped a later one), produced as their
 * Kafka timestamp, and the append time of the same change.
 */
function stampOrigin(
  out: SinkRecord[],
  from: number,
  record: SourceRecord,
  origin: RecordOrigin,
  at: number,
  appendedAt: number,
): void {
  let timestamp: bigint | undefined
  for (let i = from; i < out.length; i++) {
    const output = out[i] as Stamped
    if (output.timestamp === undefined) output.timestamp = timestamp ??= BigInt(at)
    output.appendedAt ??= appendedAt
    if (output.source !== undefined) continue
    output.source = origin
    if (origin !== record) output.input = record
  }
}

function buildInstance(graph: TopologyGraph, options: CompileOptions): Instance {
  const scope = newRecordScope()
  const byName = new Map<string, TopologyNode>(graph.nodes.map((n) => [n.name, n]))
  const consumers = new Map<string, { node: string; slot: number }[]>()
  for (const node of graph.nodes) {
    node.inputs.forEach((input, slot) => {
      const list = consumers.get(input) ?? []
      list.push({ node: node.name, slot })
      consumers.set(input, list)
    })
  }
  const handlers = new Map<string, readonly ChangeHandler[]>()
  const topics = new Map<string, TopicEntry>()
  const prefetch = new Map<string, PrefetchRead[]>()
  const addRead = (topic: string, read: PrefetchRead): void => {
    const list = prefetch.get(topic) ?? []
    if (!list.some((r) => r.store === read.store && r.keyOf === read.keyOf && r.scan === read.scan)) list.push(read)
    prefetch.set(topic, list)
  }
  const stages: StageBuffer[] = []
  const batchStates: BatchState[] = []

  const env: CompileEnv = {
    graph,
    partitions: options.partitions,
    services: options.services ?? graph.services,
    scope,
    downstream(name) {
      const targets = (consumers.get(name) ?? []).map((c) => handlers.get(c.node)![c.slot])
      if (targets.length === 0) return noop
      if (targets.length === 1) return targets[0]
      return (key, oldValue, newValue) => {
        for (let i = 0; i < targets.length; i++) targets[i](key, oldValue, newValue)
      }
    },
    addTopic(topic, entry) {
      topics.set(topic, entry)
    },
    addPrefetch(topic, store, keyOf) {
      addRead(topic, { store, keyOf, scan: false })
    },
    addPrefetchScan(topic, store, prefixOf) {
      addRead(topic, { store, keyOf: prefixOf, scan: true })
    },
    getter(name): ValueGetter {
      const node = byName.get(name)!
      const getter = kindOf(node).getter
      if (getter === undefined) throw new Error(`node '${name}' cannot be read as a table`)
      return getter(node, graph, (input) => env.getter(input))
    },
    sinkPartitions: (topic) => options.sinkPartitions?.[topic] ?? options.partitions,
    addStage(buffer) {
      stages.push(buffer)
    },
    addBatchState(state) {
      batchStates.push(state)
    },
  }
  // Consumers first, so every node's downstream handlers exist when it compiles.
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i]
    handlers.set(node.name, kindOf(node).compile(node, env))
  }
  stages.reverse()
  return { scope, topics, stages, batchStates, prefetch }
}

/** Every topic the topology reads, writes or owns, with the settings internal ones are created with. */
export function topologyTopics(graph: TopologyGraph, partitions?: number): TopicSpec[] {
  const specs: TopicSpec[] = []
  for (const node of graph.nodes)
    for (const topic of externalReads(node, graph))
      if (!specs.some((s) => s.name === topic)) specs.push({ name: topic, role: 'source', config: {} })
  for (const node of graph.nodes) {
    for (const topic of kindOf(node).internalTopics(node, graph)) {
      specs.push({
        name: topic.name,
        role: topic.role,
        partitions,
        config: topic.config,
        ...(topic.store ? { store: topic.store } : {}),
      })
    }
  }
  for (const node of graph.nodes)
    for (const topic of externalWrites(node, graph))
      if (!specs.some((s) => s.name === topic)) specs.push({ name: topic, role: 'sink', config: {} })
  // Bounded retention: the forgetting proof relies on dead letters expiring (src/governance/forget/dead-letter.ts).
  specs.push({ name: graph.deadLetterTopic, role: 'dead-letter', partitions, config: DEAD_LETTER_TOPIC_CONFIG })
  return specs
}

export function compileTopology(graph: TopologyGraph, options: CompileOptions): ProcessorTopology {
  if (!Number.isInteger(options.partitions) || options.partitions < 1) {
    throw new RagstreamError(
      'RS_CONFIG_INVALID',
      `partitions must be a positive integer, got ${String(options.partitions)}`,
      { context: { field: 'partitions' } },
    )
  }
  const template = buildInstance(graph, options)
  const pool: Instance[] = [template]
  const decodedBatches = new WeakMap<readonly SourceRecord[], DecodedRow[]>()
  const topics = topologyTopics(graph, options.partitions)
  const sourceTopics = [...template.topics.keys()]
  const storeNames = graph.nodes.flatMap((n) => kindOf(n).stores(n, graph))
  const app = graph.applicationId
  const preparers = graph.nodes.flatMap((n) => preparerOf(n) ?? [])
  const prepared = new WeakSet<readonly SourceRecord[]>()
  const repartitionTopics = new Set(topics.filter((t) => t.role === 'repartition').map((t) => t.name))

  /** The record's origin: a pack item's, an internal record's header, else the record itself. */
  const originOf = (record: SourceRecord): RecordOrigin => {
    if (record.origin !== undefined) return record.origin
    if (repartitionTopics.has(record.topic)) return originHeader(record.headers) ?? record
    return record
  }
  /** When the record's change was appended to its source topic: a pack item's, an internal record's header, else its origin's timestamp. */
  const appendedAtOf = (record: SourceRecord, origin: RecordOrigin): number => {
    if (record.appendedAt !== undefined) return record.appendedAt
    if (repartitionTopics.has(record.topic)) return appendTimeHeader(record.headers) ?? originAppendTime(origin)
    return originAppendTime(origin)
  }
  /**
   * Internal records carry their origin in a header (packs carry one per item instead), and their
   * change's append time when it is not the origin's (a join took a joined row's later change).
   */
  const carryOrigins = (out: SinkRecord[]): void => {
    for (let i = 0; i < out.length; i++) {
      const record = out[i]
      if (record.source === undefined || !repartitionTopics.has(record.topic)) continue
      const headers = new Map(record.headers ?? [])
      headers.set(ORIGIN_HEADER, encodeOrigin(record.source))
      if (record.appendedAt !== undefined && record.appendedAt !== originAppendTime(record.source))
        headers.set(APPENDED_HEADER, encodeAppendTime(record.appendedAt))
      out[i] = { ...record, headers }
    }
  }

  const entryFor = (instance: Instance, record: SourceRecord): TopicEntry => {
    const entry = instance.topics.get(record.topic)
    if (entry === undefined) throw new Error(`topology '${app}' does not read topic '${record.topic}'`)
    return entry
  }
  const decodeOne = (entry: TopicEntry, record: SourceRecord): DecodedRecord | DecodeFailure => {
    try {
      return entry.decode(record)
    } catch (error) {
      return new DecodeFailure(error)
    }
  }
  const decode = (entry: TopicEntry, record: SourceRecord): DecodedRow => {
    if (entry.unpack === undefined) return decodeOne(entry, record)
    let items: readonly SourceRecord[]
    try {
      items = entry.unpack(record)
    } catch (error) {
      return new DecodeFailure(error)
    }
    return new Unpacked(
      items,
      items.map((item) => decodeOne(entry, item)),
    )
  }
  const deadLetter = (
    record: SourceRecord,
    node: string,
    error: unknown,
    fallback: ErrorCode,
    now: number,
  ): SinkRecord => {
    const code = error instanceof RagstreamError ? error.code : fallback
    const message = deadLetterMessage(error)
    const origin = originOf(record)
    const headers = new Map<string, Buffer>([
      [DEAD_LETTER_HEADERS.code, Buffer.from(code)],
      [DEAD_LETTER_HEADERS.message, Buffer.from(message)],
      [DEAD_LETTER_HEADERS.topic, Buffer.from(origin.topic)],
      [DEAD_LETTER_HEADERS.partition, Buffer.from(String(origin.partition))],
      [DEAD_LETTER_HEADERS.offset, Buffer.from(String(origin.offset))],
      [DEAD_LETTER_HEADERS.timestamp, Buffer.from(String(origin.timestamp))],
      [DEAD_LETTER_HEADERS.node, Buffer.from(node)],
      [DEAD_LETTER_HEADERS.failedAt, Buffer.from(String(now))],
      [DEAD_LETTER_HEADERS.application, Buffer.from(app)],
    ])
    if (origin !== record) {
      // An internal record (a join's response, a group-by change): name the source change that caused it, and where it failed.
      if (origin.key !== null && origin.key.length <= ORIGIN_KEY_MAX_BYTES)
        headers.set(DEAD_LETTER_HEADERS.sourceKey, origin.key)
      headers.set(DEAD_LETTER_HEADERS.inputTopic, Buffer.from(record.topic))
      headers.set(DEAD_LETTER_HEADERS.inputPartition, Buffer.from(String(record.partition)))
      headers.set(DEAD_LETTER_HEADERS.inputOffset, Buffer.from(String(record.offset)))
    }
    return {
      topic: graph.deadLetterTopic,
      partition: record.partition,
      key: record.key,
      value: record.value,
      headers,
      source: origin,
      ...(origin !== record ? { input: record } : {}),
    }
  }
  /** A per-record failure: forget what the record did so far, revert its store writes, dead-letter it. */
  const fail = (instance: Instance, record: SourceRecord, mark: number, failure: RecordFailure): void => {
    const { scope } = instance
    scope.out.length = mark
    for (const stage of instance.stages) {
      while (stage.origins.length > 0 && stage.origins[stage.origins.length - 1] === record) {
        stage.origins.pop()
        stage.items.pop()
      }
    }
    scope.undo.revert()
    scope.out.push(deadLetter(record, failure.node, failure.error, 'RS_RECORD_INVALID', scope.now))
  }

  const run = async (
    instance: Instance,
    records: readonly SourceRecord[],
    stores: ReadonlyMap<string, StateStore>,
    now: number,
  ): Promise<SinkRecord[]> => {
    const { scope } = instance
    const out: SinkRecord[] = []
    scope.out = out
    scope.stores = stores
    scope.now = now
    const handleOne = (entry: TopicEntry, record: SourceRecord, row: DecodedRecord | DecodeFailure): void => {
      if (row instanceof DecodeFailure) {
        out.push(deadLetter(record, entry.node, row.error, 'RS_DECODE_FAILED', now))
        return
      }
      const origin = originOf(record)
      beginRecord(scope, record, origin, Number(record.timestamp), appendedAtOf(record, origin))
      const mark = out.length
      try {
        entry.handle(record, row)
      } catch (error) {
        if (!(error instanceof RecordFailure)) throw error
        fail(instance, record, mark, error)
      }
      stampOrigin(out, mark, record, origin, scope.timestamp, scope.appendedAt)
    }
    const decoded = decodedBatches.get(records)
    for (let i = 0; i < records.length; i++) {
      const record = records[i]
      const entry = entryFor(instance, record)
      const row = decoded?.[i] ?? decode(entry, record)
      if (row instanceof Unpacked) {
        for (let j = 0; j < row.items.length; j++) handleOne(entry, row.items[j], row.rows[j])
      } else handleOne(entry, record, row)
    }
    for (let s = 0; s < instance.stages.length; s++) {
      const stage = instance.stages[s]
      if (stage.items.length === 0) continue
      const items = stage.items.splice(0)
      const origins = stage.origins.splice(0)
      // Remembered, not only thrown: a stage that catches the throw and answers per item still stops.
      let violation: RagstreamError | undefined
      const contextOf = (node: StageNode): StageContext => ({
        now,
        store(name) {
          if (!node.stores.includes(name)) {
            violation ??= contractViolation(
              node.name,
              `read store '${name}', which it did not declare (declared: ${node.stores.length > 0 ? node.stores.join(', ') : 'none'})`,
              "declare every store the stage reads in its options' stores",
            )
            throw violation
          }
          return stores.get(name)!
        },
      })
      // The next stage's look-ahead, with this stage's items, in the same tick as this stage's own
      // first reads (see StageProcessor.prefetchAhead); its failures are the next stage's to meet.
      const next = instance.stages[s + 1]?.node
      const ahead = next?.processor.prefetchAhead?.(items, contextOf(next)).catch(() => {})
      const results: readonly StageResult[] = await stage.node.processor.process(items, contextOf(stage.node))
      await ahead
      if (violation !== undefined) throw violation
      if (!Array.isArray(results) || results.length !== items.length) {
        const count = Array.isArray(results) ? results.length : 'no array of'
        throw contractViolation(
          stage.node.name,
          `returned ${count} results for ${items.length} item${items.length === 1 ? '' : 's'}`,
          'process(items) must return one result per item, in order: an array of rows, or { error } for that item',
        )
      }
      for (let j = 0; j < results.length; j++) {
        const record = origins[j]
        const result = results[j]
        if (!Array.isArray(result)) {
          if (result === null || typeof result !== 'object' || !('error' in result)) {
            throw contractViolation(
              stage.node.name,
              `returned ${result === null ? 'null' : typeof result} as the result of item ${j}`,
              'each result is an array of rows, or { error } for that item',
            )
          }
          out.push(deadLetter(record, stage.node.name, result.error, 'RS_RECORD_INVALID', now))
          continue
        }
        const origin = originOf(record)
        const item = items[j]
        beginRecord(scope, record, origin, item.timestamp, item.appendedAt ?? appendedAtOf(record, origin))
        const mark = out.length
        try {
          for (const row of result) {
            if (
              row === null ||
              typeof row !== 'object' ||
              typeof row.key !== 'string' ||
              (row.partitionKey !== undefined && typeof row.partitionKey !== 'string')
            ) {
              throw recordFailure(
                stage.node.name,
                new RagstreamError(
                  'RS_RECORD_INVALID',
                  'the stage returned a row without a string key (or with a non-string partitionKey)',
                ),
              )
            }
            scope.partitionKey = row.partitionKey ?? null
            stage.emit(row.key, undefined, row.value ?? null)
          }
        } catch (error) {
          if (!(error instanceof RecordFailure)) throw error
          fail(instance, record, mark, error)
        }
        stampOrigin(out, mark, record, origin, scope.timestamp, scope.appendedAt)
        scope.partitionKey = null
      }
    }
    for (const state of instance.batchStates) state.flush()
    if (repartitionTopics.size > 0) carryOrigins(out)
    return out
  }

  const prepare = async (records: readonly SourceRecord[]): Promise<void> => {
    await Promise.all(
      preparers.map(({ topic, prepare }) => {
        const own = records.filter((r) => r.topic === topic)
        return own.length === 0 ? Promise.resolve() : prepare(own)
      }),
    )
    prepared.add(records)
  }

  return {
    applicationId: app,
    sourceTopics,
    topics,
    storeNames,
    ...(preparers.length > 0 ? { prepare } : {}),
    prefetchKeys(records) {
      if (preparers.length > 0 && !prepared.has(records)) {
        throw new Error(
          `topology '${app}' has decoders that load schemas per batch: call prepare(records) before prefetchKeys(records)`,
        )
      }
      const plan = new PrefetchPlan()
      const rows: DecodedRow[] = new Array(records.length)
      const want = (record: SourceRecord, row: DecodedRecord | DecodeFailure): void => {
        if (row instanceof DecodeFailure) return
        for (const read of template.prefetch.get(record.topic) ?? []) {
          const key = read.keyOf === undefined ? row.key : read.keyOf(row)
          if (key === null) continue
          if (read.scan) plan.prefix(read.store, record.partition, key)
          else plan.key(read.store, record.partition, key)
        }
      }
      for (let i = 0; i < records.length; i++) {
        const record = records[i]
        const row = decode(entryFor(template, record), record)
        rows[i] = row
        if (row instanceof Unpacked) {
          for (let j = 0; j < row.items.length; j++) want(row.items[j], row.rows[j])
        } else want(record, row)
      }
      decodedBatches.set(records, rows)
      return plan
    },
    async process(records, stores, now) {
      const instance = pool.pop() ?? buildInstance(graph, options)
      try {
        return await run(instance, records, stores, now)
      } finally {
        for (const stage of instance.stages) {
          stage.items.length = 0
          stage.origins.length = 0
        }
        for (const state of instance.batchStates) state.reset()
        instance.scope.undo.release()
        instance.scope.out = []
        instance.scope.stores = new Map()
        pool.push(instance)
      }
    },
  }
}
