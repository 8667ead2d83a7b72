/**
 * `govern`: the governance policy applied to every row before any of its text reaches an embedder or
 * a topic, and forgetting as a join (design point 7, docs/governance.md).
 *
 * Rows: each change of the input table is decided by the compiled policy (deny, classify, residency,
 * redact, subjects). An emitted row is a {@link GovernedDocument} holding only redacted text and
 * metadata; a denied, suppressed or deleted row is a delete downstream, so the chunk stage tombstones
 * every chunk the entity had. Audit events (DENIED, REDACTED, RECLASSIFIED, DELETION_APPLIED) go to
 * the audit topic in the batch's transaction.
 *
 * Forgetting: deletion requests arrive on the deletions topic keyed by subject, so on one partition,
 * while the subject's entities live on many. The task that reads a request re-sends it to every
 * partition of the deletions-broadcast repartition topic (one copy per partition); each task then,
 * in its own input order:
 *   (a) writes the subject's suppression record to `<govern>-forgotten-subjects` (never a null: a
 *       compacted changelog keeps it, so a replay from earliest still finds it),
 *   (b) deletes downstream every entity of the subject its subject index knows (the chunk stage then
 *       tombstones their chunks),
 *   (c) removes the subject's entries from its stores: the subject index, the entity stores and
 *       subject-keyed stores the topology names,
 *   (d) emits DELETION_APPLIED with the counts of its partition.
 * Later rows of a suppressed subject produce nothing but a delete. Within one batch every deletion
 * request is applied before the batch's row changes, so a request and an update racing in one batch
 * end in suppression whichever came first; across batches the input order suffices, because the
 * index finds what an earlier batch indexed and the suppression stops what a later batch brings.
 *
 * Without `forget` (a topology whose rows name no subject to forget) govern still decides, redacts
 * and audits every row; it has no deletions topic, broadcast topic or forgotten-subjects store, and
 * its subject index only remembers each entity's classification (for RECLASSIFIED).
 *
 * Counts (never values) of each batch go to `observe` and to the telemetry scope of the runner
 * (src/observability/telemetry.ts), which `ragstream run` exports as metrics.
 *
 * The decisions need keys that depend on values (subject hashes), so govern is a stage: the
 * synchronous pass buffers the batch's changes and requests, and one async `process` per batch
 * prefetches its keys in at most three round trips and decides.
 */
import type { RowLineage } from '../cdc/table-decoder.ts'
import { decodeChunkSet } from '../chunking/chunk-set.ts'
import type { EmbeddingCache } from '../embedding/cache.ts'
import { ConfigError, RagstreamError } from '../errors.ts'
import type { AuditEventValue } from '../governance/audit.ts'
import { deletionAppliedAudit } from '../governance/forget/deletion-audit.ts'
import type { DeletionRequestValue } from '../governance/forget/deletion-request.ts'
import {
  decodeSuppression,
  encodeSuppression,
  findSuppression,
  mergeSuppression,
  suppresses,
  suppressionFromRequest,
  type SuppressionMode,
  type SuppressionRecord,
} from '../governance/forget/suppression.ts'
import {
  compilePolicy,
  type CompiledPolicy,
  type GovernRecord,
  type JoinedMetadata,
  type PolicyDefinition,
} from '../governance/policy.ts'
import { buildRedactor, type RedactionConfig } from '../governance/redact/redactor.ts'
import { hashSubject, isSubject } from '../governance/subject.ts'
import { report, telemetryActive, type GovernTelemetry } from '../observability/telemetry.ts'
import type { SourceRecord } from '../runtime/task.ts'
import type { StateStore } from '../state/store.ts'
import {
  CHANGELOG_CONFIG,
  REPARTITION_CONFIG,
  type InternalTopic,
  type NodeKindSpec,
  type StageBuffer,
} from '../topology/compiled.ts'
import {
  changelogTopic,
  deletionBroadcastTopic,
  forgottenSubjectsStore,
  subjectIndexStore,
  topicNameProblem,
  type GovernNode,
  type StageContext,
  type StageItem,
  type StageNode,
  type StageResult,
  type StageRow,
  type TopologyGraph,
  type Decoder,
} from '../topology/graph.ts'
import { decodeJson, encodeJson } from '../topology/json.ts'
import { partitionForString } from '../topology/partitioner.ts'

/** What govern reads from a row. */
export interface GovernDocumentInput {
  /** The text that will be chunked and embedded (redacted by the policy first). */
  readonly text: string
  /** Metadata indexed with each chunk (redacted by the policy first). */
  readonly metadata?: Readonly<Record<string, unknown>>
  /** Source change time; default the row's `_source.timestampMs`, else the record timestamp. */
  readonly timestampMs?: number
}

/** A governed row: only what the policy let through, redacted. The input row itself is not passed on. */
export interface GovernedDocument {
  readonly text: string
  readonly metadata: Readonly<Record<string, unknown>>
  readonly classification: string
  /** The policy output (region) the row goes to. */
  readonly region: string
  readonly tenant: string | null
  readonly subjects: readonly string[]
  /** `<policy>@<version>`. */
  readonly policy_version: string
  /** The input row's lineage, when it had one (the chunk events' lineage). */
  readonly _source?: RowLineage
}

/** Decodes deletion requests; an AvroValueCodec for schemas/deletion-request.avsc fits as is. */
export interface DeletionRequestDecoder {
  /** Called once per batch before decoding (an Avro codec is opened lazily here). */
  open?(): Promise<void>
  prepare?(values: Iterable<Buffer | null>): Promise<void>
  decode(value: Buffer | null): DeletionRequestValue | null
}

export interface ForgetOptions {
  /** The governance deletions topic (keyed by subject); co-partitioned with the source topics. */
  readonly deletionsTopic: string
  /** FOREVER (default) or BEFORE_REQUEST (only data with a source time before the request). */
  readonly mode?: SuppressionMode
  /** Default: JSON values of schemas/deletion-request.avsc's shape. */
  readonly decode?: DeletionRequestDecoder
  /** Stores keyed by the entity key (its source table, materialized joins): forgotten entities leave them. */
  readonly entityStores?: readonly string[]
  /** Stores keyed by something the subject names (its metadata row, a join's reverse index): store → key of the subject, or null. Cleaned under FOREVER only. */
  readonly subjectStores?: Readonly<Record<string, (subject: string) => string | null>>
  /** Chunk-set stores downstream, to count the chunks each request tombstones (the receipt's count). */
  readonly chunkSets?: readonly { readonly store: string; readonly entityType: string }[]
  /**
   * The embedding cache entries of a forgotten entity's chunk texts are deleted too. Govern does not
   * chunk, so `contentHashes` gives the content hashes of the chunks the chunk stage will make of a
   * governed row (the same chunker: `chunker.chunk(…).map((c) => c.contentHash)`); they are kept in
   * the subject index (sha256 of redacted text, no content) until the entity is forgotten.
   */
  readonly embeddingCache?: {
    readonly cache: EmbeddingCache
    /** The cache namespace: the Embedder's `model` (`<provider>:<model>@<dimensions>`). */
    readonly namespace: string | (() => string)
    readonly contentHashes: (document: GovernedDocument, key: string) => readonly string[]
  }
}

/** Where audit events go: a topic (the chunk topic, so the sink writes them with the deletes) and their encoding. */
export interface AuditOutput {
  readonly topic: string
  /** Default: JSON. The pgvector sink reads Avro (schemas/audit-event.avsc) from the chunk topic. */
  readonly encode?: (event: AuditEventValue) => Buffer
  /** Called once per batch before encoding (e.g. registers the Avro schema lazily). */
  readonly open?: () => Promise<void>
}

export interface GovernOptions<V> {
  /** Required: names the stores and the broadcast topic. */
  readonly name: string
  readonly policy: PolicyDefinition
  /** Recorded in audit events. */
  readonly topologyVersion?: string
  /** Where the pseudonymisation key is read from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly document: (value: V, key: string) => GovernDocumentInput
  /** The joined rows the policy decides on (e.g. the customer); default `{}`. */
  readonly joined?: (value: V, key: string) => JoinedMetadata
  readonly tenant?: (value: V, key: string) => string | null
  /**
   * Forgetting (deletion requests, suppression, store cleanup). Optional: without it the rows are
   * still denied, classified, routed, redacted and audited, but no subject can be forgotten.
   */
  readonly forget?: ForgetOptions
  readonly audit: AuditOutput
  /**
   * Called once per batch with what govern did (counts only), e.g. for a test or your own metrics.
   * Redaction counts are per detector kind and `field:<path>`. `ragstream run` exports the same
   * counts without it (docs/metrics.md).
   */
  readonly observe?: (batch: GovernBatchMetrics) => void
}

/** What one batch of govern did: counts, never values (the telemetry report without its node). */
export type GovernBatchMetrics = Omit<GovernTelemetry, 'kind' | 'node'>

/** Options of {@link redactAtSource}. */
export interface RedactAtSourceOptions {
  /** Detectors, actions and field rules; default every detector on, masking (docs/governance.md). */
  readonly redact?: RedactionConfig
  /** Where the pseudonymisation key is read from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Called for each row that had values removed, with the counts per detector kind and `field:<path>`. */
  readonly observe?: (redactions: Readonly<Record<string, number>>, topic: string) => void
}

/**
 * A source decoder that redacts each row before the table materializes it, so the source table's
 * store, its changelog and every join downstream hold only redacted values: every string field goes
 * through the detectors (field rules apply, see docs/governance.md). Use it for sources whose raw text
 * must not rest anywhere; govern still decides and redacts what it passes on. What it removed is
 * counted per detector (`observe`, and `ragstream_redactions_total{node="source:<topic>"}` under
 * `ragstream run`).
 *
 * @example
 * ```ts
 * builder.table<Ticket>('crm.tickets', { name: 'tickets', decode: redactAtSource(defaultTableDecoder, { redact: { detectors: { email: 'pseudonymise' } } }) })
 * ```
 */
export function redactAtSource(decode: Decoder, options: RedactAtSourceOptions = {}): Decoder {
  const redactor = buildRedactor(options.redact ?? {}, options.env ?? process.env)
  const observe = options.observe
  return (key, value, record) => {
    const decoded = decode(key, value, record)
    if (decoded === null || typeof decoded !== 'object' || decoded.value === null || typeof decoded.value !== 'object')
      return decoded
    const counts: Record<string, number> = {}
    const redacted = redactor.redactMetadata(decoded.value as Record<string, unknown>, counts)
    if (redacted === decoded.value) return decoded
    observe?.(counts, record.topic)
    if (telemetryActive()) report({ kind: 'source-redactions', topic: record.topic, redactions: counts })
    return { key: decoded.key, value: redacted }
  }
}

/** The serialisable-ish options kept on the node. */
export type GovernNodeOptions = GovernOptions<any>

export function governNode<V>(name: string, named: boolean, input: string, options: GovernOptions<V>): GovernNode {
  return Object.freeze({
    kind: 'govern',
    name,
    named,
    inputs: Object.freeze([input]),
    options: options as GovernNodeOptions,
  })
}

const jsonRequests: DeletionRequestDecoder = {
  decode: (value) => (value === null ? null : (decodeJson(value) as DeletionRequestValue)),
}

function checkRequest(request: unknown): DeletionRequestValue {
  const r = request as Record<string, unknown>
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.request_id !== 'string' ||
    r.request_id === '' ||
    !isSubject(r.subject) ||
    !Number.isSafeInteger(Number(r.requested_at_ms)) ||
    (r.mode !== 'FOREVER' && r.mode !== 'BEFORE_REQUEST')
  ) {
    throw new RagstreamError(
      'RS_DECODE_FAILED',
      'a deletion request needs request_id, a subject <type>:<id>, requested_at_ms and mode',
      { context: { node: 'govern' } },
    )
  }
  return { ...(r as unknown as DeletionRequestValue), requested_at_ms: Number(r.requested_at_ms) }
}

function compiled(node: GovernNode, graph: TopologyGraph): CompiledPolicy {
  return compilePolicy(node.options.policy, {
    topology: graph.applicationId,
    topologyVersion: node.options.topologyVersion,
    env: node.options.env ?? process.env,
    path: `/topology/nodes/${node.name}/policy`,
  })
}

/** Stores of other nodes that forgetting reads or cleans (validate.ts checks they exist). */
export function foreignStores(node: GovernNode): string[] {
  const forget = node.options?.forget
  return [
    ...(forget?.entityStores ?? []),
    ...Object.keys(forget?.subjectStores ?? {}),
    ...(forget?.chunkSets ?? []).map((c) => c.store),
  ]
}

/** Its own stores: without `forget` only the subject index (classifications, for RECLASSIFIED). */
function ownStores(node: GovernNode): string[] {
  return node.options?.forget === undefined
    ? [subjectIndexStore(node.name)]
    : [forgottenSubjectsStore(node.name), subjectIndexStore(node.name)]
}

function internalTopicsOf(node: GovernNode, app: string): InternalTopic[] {
  return [
    ...ownStores(node).map((store) => ({
      name: changelogTopic(app, store),
      role: 'changelog' as const,
      store,
      purpose: `changelog of store ${store}`,
      config: CHANGELOG_CONFIG,
    })),
    ...(node.options?.forget === undefined
      ? []
      : [
          {
            name: deletionBroadcastTopic(app, node.name),
            role: 'repartition' as const,
            purpose: `${node.name} deletion requests, one copy per partition`,
            config: REPARTITION_CONFIG,
          },
        ]),
  ]
}

/** A row change as buffered for the stage, with its record's timestamp. */
class EntityChange {
  readonly value: unknown
  readonly timestamp: number
  constructor(value: unknown, timestamp: number) {
    this.value = value
    this.timestamp = timestamp
  }
}

class ForgetCopy {
  readonly bytes: Buffer | null
  constructor(bytes: Buffer | null) {
    this.bytes = bytes
  }
}

class AuditRecord {
  readonly event: AuditEventValue
  constructor(event: AuditEventValue) {
    this.event = event
  }
}

/* Subject index store, two kinds of keys per partition (JSON values):
 *   s:<subject hash>  → [[entity key, source time ms], …]   the entities indexed for the subject
 *   e:<entity key>    → {"s": [subject hash, …], "c": classification, "t": source time ms, "h"?: [chunk content hash, …]}
 * Only hashes and entity keys, never subjects. */
interface EntityEntry {
  readonly s: readonly string[]
  readonly c: string
  readonly t: number
  /** Content hashes of its chunk texts (only with `forget.embeddingCache`). */
  readonly h?: readonly string[]
}

/** The batch's view of the subject index: parsed once, written once at the end of `process`. */
class SubjectIndex {
  readonly #store: StateStore
  readonly #lists = new Map<string, { partition: number; key: string; entities: Map<string, number>; dirty: boolean }>()
  readonly #entities = new Map<
    string,
    { partition: number; key: string; entry: EntityEntry | undefined; dirty: boolean }
  >()
  removed = 0

  constructor(store: StateStore) {
    this.#store = store
  }

  subject(partition: number, hash: string): Map<string, number> {
    return this.#list(partition, hash).entities
  }

  #list(partition: number, hash: string) {
    const id = `${partition}\u0000${hash}`
    let list = this.#lists.get(id)
    if (list === undefined) {
      const bytes = this.#store.get(partition, `s:${hash}`)
      const entities = new Map<string, number>(bytes === undefined ? [] : (decodeJson(bytes) as [string, number][]))
      this.#lists.set(id, (list = { partition, key: `s:${hash}`, entities, dirty: false }))
    }
    return list
  }

  #entity(partition: number, key: string) {
    const id = `${partition}\u0000${key}`
    let slot = this.#entities.get(id)
    if (slot === undefined) {
      const bytes = this.#store.get(partition, `e:${key}`)
      this.#entities.set(
        id,
        (slot = {
          partition,
          key: `e:${key}`,
          entry: bytes === undefined ? undefined : (decodeJson(bytes) as EntityEntry),
          dirty: false,
        }),
      )
    }
    return slot
  }

  entity(partition: number, key: string): EntityEntry | undefined {
    return this.#entity(partition, key).entry
  }

  /** Removes one entity from one subject's list (when its own entry is missing or lists other subjects). */
  drop(partition: number, hash: string, key: string): void {
    const list = this.#list(partition, hash)
    if (list.entities.delete(key)) list.dirty = true
  }

  /** The entity leaves the index (its subjects' lists and its own entry). */
  unindex(partition: number, key: string): void {
    const slot = this.#entity(partition, key)
    if (slot.entry === undefined) return
    for (const hash of slot.entry.s) {
      const list = this.#list(partition, hash)
      if (list.entities.delete(key)) list.dirty = true
    }
    slot.entry = undefined
    slot.dirty = true
  }

  index(
    partition: number,
    key: string,
    hashes: readonly string[],
    classification: string,
    timestamp: number,
    contentHashes: readonly string[] | undefined,
  ): void {
    const slot = this.#entity(partition, key)
    const next = new Set(hashes)
    for (const hash of slot.entry?.s ?? []) {
      if (next.has(hash)) continue
      const list = this.#list(partition, hash)
      if (list.entities.delete(key)) list.dirty = true
    }
    for (const hash of next) {
      const list = this.#list(partition, hash)
      if (list.entities.get(key) !== timestamp) {
        list.entities.set(key, timestamp)
        list.dirty = true
      }
    }
    slot.entry =
      contentHashes === undefined
        ? { s: [...next], c: classification, t: timestamp }
        : { s: [...next], c: classification, t: timestamp, h: contentHashes }
    slot.dirty = true
  }

  flush(): void {
    for (const list of this.#lists.values()) {
      if (!list.dirty) continue
      if (list.entities.size === 0) {
        this.#store.delete(list.partition, list.key)
        this.removed++
      } else this.#store.put(list.partition, list.key, encodeJson([...list.entities]))
    }
    for (const slot of this.#entities.values()) {
      if (!slot.dirty) continue
      if (slot.entry === undefined) this.#store.delete(slot.partition, slot.key)
      else this.#store.put(slot.partition, slot.key, encodeJson(slot.entry))
    }
  }
}

/** Keys to prefetch, per store and partition. */
class Wanted {
  readonly #keys = new Map<StateStore, Map<number, Set<string>>>()
  add(store: StateStore, partition: number, key: string): void {
    let partitions = this.#keys.get(store)
    if (partitions === undefined) this.#keys.set(store, (partitions = new Map()))
    let keys = partitions.get(partition)
    if (keys === undefined) partitions.set(partition, (keys = new Set()))
    keys.add(key)
  }
  async load(): Promise<void> {
    const loads: Promise<void>[] = []
    for (const [store, partitions] of this.#keys)
      for (const [partition, keys] of partitions) loads.push(store.prefetch(partition, keys))
    await Promise.all(loads)
    this.#keys.clear()
  }
}

/** A user function's throw: the record's failure, without the thrown message (it may quote the row). */
function userFailure(what: string, error: unknown): RagstreamError {
  if (error instanceof RagstreamError) return error
  return new RagstreamError(
    'RS_RECORD_INVALID',
    `govern: ${what} threw ${error instanceof Error ? error.name : typeof error}`,
    { context: { node: 'govern' } },
  )
}

export const governOperator: NodeKindSpec<GovernNode> = {
  validate(node, graph, problem) {
    const options = node.options
    if (!node.named) problem('name', 'required: govern is stateful; its name identifies its stores and broadcast topic')
    if (options === null || typeof options !== 'object') return problem('options', 'required')
    if (typeof options.document !== 'function')
      problem('document', 'required: (row, key) => { text, metadata?, timestampMs? }')
    if (options.joined !== undefined && typeof options.joined !== 'function')
      problem('joined', 'must be a function (row, key) => joined metadata')
    if (options.tenant !== undefined && typeof options.tenant !== 'function')
      problem('tenant', 'must be a function (row, key) => tenant')
    if (options.observe !== undefined && typeof options.observe !== 'function')
      problem('observe', 'must be a function (batch metrics) => void')
    try {
      compiled(node, graph)
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      const prefix = `/topology/nodes/${node.name}/`
      for (const p of error.problems)
        problem(p.path.startsWith(prefix) ? p.path.slice(prefix.length) : p.path, p.message)
    }
    const forget = options.forget
    if (forget === undefined) {
      // No forgetting: nothing more to check.
    } else if (forget === null || typeof forget !== 'object')
      problem('forget', 'must be { deletionsTopic, mode?, … } (or left out: no subject can be forgotten)')
    else {
      const topic = topicNameProblem(forget.deletionsTopic)
      if (topic !== '') problem('forget/deletionsTopic', topic)
      else if (graph.nodes.some((n) => n.kind === 'table-source' && n.topic === forget.deletionsTopic))
        problem('forget/deletionsTopic', `'${forget.deletionsTopic}' is also read as a table`)
      if (forget.mode !== undefined && forget.mode !== 'FOREVER' && forget.mode !== 'BEFORE_REQUEST')
        problem('forget/mode', 'must be FOREVER or BEFORE_REQUEST')
      // That the stores it names exist is checked graph-wide in validate.ts (it knows every kind's stores).
      for (const [store, key] of Object.entries(forget.subjectStores ?? {}))
        if (typeof key !== 'function')
          problem(`forget/subjectStores/${store}`, 'must be a function (subject) => key | null')
    }
    const audit = options.audit
    if (audit === null || typeof audit !== 'object') problem('audit', 'required: { topic, encode? }')
    else {
      const topic = topicNameProblem(audit.topic)
      if (topic !== '') problem('audit/topic', topic)
      if (audit.encode !== undefined && typeof audit.encode !== 'function')
        problem('audit/encode', 'must be a function (event) => Buffer')
    }
  },
  stores: (node) => ownStores(node),
  internalTopics: (node, graph) => internalTopicsOf(node, graph.applicationId),
  physical(node, graph) {
    const { name } = node
    const app = graph.applicationId
    const forget = node.options?.forget
    const policy = `${node.options?.policy?.name}@${node.options?.policy?.version}`
    const governor = (detail: string) => ({
      type: 'processor' as const,
      name,
      stores: [...ownStores(node), ...foreignStores(node)],
      detail,
      next: [`${name}-audit-sink`],
    })
    const auditSink = { type: 'sink' as const, name: `${name}-audit-sink`, topic: node.options?.audit?.topic, next: [] }
    if (forget === undefined)
      return {
        nodes: [governor(`govern: ${policy}, no forget, async, batched`), auditSink],
        entries: [name],
        exit: name,
      }
    return {
      nodes: [
        {
          type: 'source',
          name: `${name}-deletions-source`,
          topics: [forget.deletionsTopic],
          next: [`${name}-deletions-broadcast`],
        },
        {
          type: 'processor',
          name: `${name}-deletions-broadcast`,
          stores: [],
          detail: 'one copy per partition',
          next: [`${name}-broadcast-sink`],
        },
        { type: 'sink', name: `${name}-broadcast-sink`, topic: deletionBroadcastTopic(app, name), next: [] },
        { type: 'source', name: `${name}-broadcast-source`, topics: [deletionBroadcastTopic(app, name)], next: [name] },
        governor(`govern: ${policy}, forget ${forget.mode ?? 'FOREVER'}, async, batched`),
        auditSink,
      ],
      entries: [name],
      exit: name,
    }
  },
  compile(node, env) {
    const { scope, partitions } = env
    const { name, options } = node
    const app = env.graph.applicationId
    const policy = compiled(node, env.graph)
    const forget = options.forget
    const mode = forget?.mode ?? 'FOREVER'
    const decoder = forget?.decode ?? jsonRequests
    const broadcast = deletionBroadcastTopic(app, name)
    const forgottenName = forget === undefined ? undefined : forgottenSubjectsStore(name)
    const indexName = subjectIndexStore(name)
    const entityStores = forget?.entityStores ?? []
    const subjectStores = Object.entries(forget?.subjectStores ?? {})
    const chunkSets = forget?.chunkSets ?? []
    const embeddingCache = forget?.embeddingCache
    const audit = options.audit
    const encodeAudit = audit.encode ?? ((event: AuditEventValue) => encodeJson(event))
    const auditPartitions = env.sinkPartitions(audit.topic)
    const downstream = env.downstream(name)
    const topologyVersion = options.topologyVersion

    const items: StageItem[] = []
    const origins: SourceRecord[] = []
    const stageNode: StageNode = Object.freeze({
      kind: 'stage',
      name,
      named: true,
      inputs: node.inputs,
      stageKind: 'govern',
      stores: Object.freeze([...ownStores(node), ...foreignStores(node)]),
      processor: { process: (batch: readonly StageItem[], context: StageContext) => process(batch, context) },
    })
    const buffer: StageBuffer = {
      node: stageNode,
      items,
      origins,
      emit(key, oldValue, value) {
        if (value instanceof AuditRecord) {
          scope.out.push({
            topic: audit.topic,
            partition: partitionForString(key, auditPartitions),
            key: Buffer.from(key, 'utf8'),
            value: encodeAudit(value.event),
          })
          return
        }
        downstream(key, oldValue, value)
      },
    }
    env.addStage(buffer)

    // Deletions topic → every partition of the broadcast topic, bytes unchanged (decoded by each task's stage).
    if (forget !== undefined)
      env.addTopic(forget.deletionsTopic, {
        node: `${name}-deletions-broadcast`,
        decode: (record) => ({ key: record.key === null ? '' : record.key.toString('utf8'), value: null }),
        handle(record) {
          // A deletion cannot be undone: a null value on the deletions topic changes nothing.
          if (record.value === null) return
          for (let p = 0; p < partitions; p++)
            scope.out.push({ topic: broadcast, partition: p, key: record.key, value: record.value })
        },
      })
    if (forget !== undefined)
      env.addTopic(broadcast, {
        node: name,
        decode: (record) => ({ key: record.key === null ? '' : record.key.toString('utf8'), value: null }),
        handle(record) {
          items.push({ key: '', value: new ForgetCopy(record.value), oldValue: undefined, partition: record.partition })
          origins.push(record)
        },
      })

    async function process(
      batch: readonly StageItem[],
      context: { store(name: string): StateStore; readonly now: number },
    ): Promise<StageResult[]> {
      await audit.open?.()
      // Without forget there are no requests (no broadcast topic) and nothing is suppressed; so
      // `forgotten!` below, on the requests' path only.
      const forgotten = forgottenName === undefined ? undefined : context.store(forgottenName)
      const index = new SubjectIndex(context.store(indexName))
      const indexStore = context.store(indexName)
      const results: (StageResult | undefined)[] = new Array(batch.length)
      const wanted = new Wanted()

      // Decode requests and compute subjects (user code) first: failures become the item's dead letter.
      const requests = new Map<number, DeletionRequestValue>()
      const forgetItems = batch.flatMap((item, i) => (item.value instanceof ForgetCopy ? [i] : []))
      if (forgetItems.length > 0) {
        await decoder.open?.()
        await decoder.prepare?.(forgetItems.map((i) => (batch[i].value as ForgetCopy).bytes))
      }
      for (const i of forgetItems) {
        try {
          const request = decoder.decode((batch[i].value as ForgetCopy).bytes)
          if (request === null) results[i] = []
          else requests.set(i, checkRequest(request))
        } catch (error) {
          results[i] = {
            error:
              error instanceof RagstreamError
                ? error
                : new RagstreamError('RS_DECODE_FAILED', 'undecodable deletion request', {
                    cause: error,
                    context: { node: name },
                  }),
          }
        }
      }
      interface Decided {
        readonly record: GovernRecord
        readonly joined: JoinedMetadata
        readonly subjects: readonly string[]
        readonly hashes: readonly string[]
        readonly tenant: string | null
        readonly source: RowLineage | undefined
      }
      const rows = new Map<number, Decided>()
      batch.forEach((item, i) => {
        if (!(item.value instanceof EntityChange) || item.value.value === null || item.value.value === undefined) return
        const value = item.value.value
        try {
          let doc: GovernDocumentInput
          let joined: JoinedMetadata
          let tenant: string | null
          try {
            doc = options.document(value, item.key)
            joined = options.joined?.(value, item.key) ?? {}
            tenant = options.tenant?.(value, item.key) ?? null
          } catch (error) {
            throw userFailure('document, joined or tenant', error)
          }
          if (doc === null || typeof doc !== 'object' || typeof doc.text !== 'string')
            throw new RagstreamError('RS_RECORD_INVALID', 'govern: document must return { text: string, … }', {
              context: { node: name },
            })
          const source = (value as { _source?: RowLineage })._source
          const timestampMs = doc.timestampMs ?? source?.timestampMs ?? item.value.timestamp
          const record: GovernRecord = { key: item.key, text: doc.text, metadata: doc.metadata ?? {}, timestampMs }
          const subjects = policy.subjects(record, joined)
          rows.set(i, { record, joined, subjects, hashes: subjects.map(hashSubject), tenant, source })
        } catch (error) {
          results[i] = { error }
        }
      })

      // Round 1: suppressions and subject lists of requests and rows; the rows' index entries.
      for (const [i, request] of requests) {
        const hash = hashSubject(request.subject)
        wanted.add(forgotten!, batch[i].partition, hash)
        wanted.add(indexStore, batch[i].partition, `s:${hash}`)
      }
      batch.forEach((item, i) => {
        if (!(item.value instanceof EntityChange) || results[i] !== undefined) return
        wanted.add(indexStore, item.partition, `e:${item.key}`)
        for (const hash of rows.get(i)?.hashes ?? []) {
          if (forgotten !== undefined) wanted.add(forgotten, item.partition, hash)
          wanted.add(indexStore, item.partition, `s:${hash}`)
        }
      })
      await wanted.load()

      // Round 2: what the requests will remove, and the rows' former subjects.
      for (const [i, request] of requests) {
        const partition = batch[i].partition
        for (const entity of index.subject(partition, hashSubject(request.subject)).keys()) {
          wanted.add(indexStore, partition, `e:${entity}`)
          for (const store of entityStores) wanted.add(context.store(store), partition, entity)
          for (const set of chunkSets) wanted.add(context.store(set.store), partition, `${set.entityType}:${entity}`)
        }
        for (const [store, keyOf] of subjectStores) {
          const key = keyOf(request.subject)
          if (typeof key === 'string') wanted.add(context.store(store), partition, key)
        }
      }
      batch.forEach((item, i) => {
        if (!(item.value instanceof EntityChange) || results[i] !== undefined) return
        for (const hash of index.entity(item.partition, item.key)?.s ?? [])
          wanted.add(indexStore, item.partition, `s:${hash}`)
      })
      await wanted.load()

      // Round 3: the other subjects of the entities the requests remove.
      for (const [i, request] of requests) {
        const partition = batch[i].partition
        for (const entity of index.subject(partition, hashSubject(request.subject)).keys()) {
          for (const hash of index.entity(partition, entity)?.s ?? []) wanted.add(indexStore, partition, `s:${hash}`)
        }
      }
      await wanted.load()

      // Suppressions as the batch sees them (requests applied first).
      const suppressions = new Map<string, SuppressionRecord | undefined>()
      const suppressionOf = (partition: number, hash: string): SuppressionRecord | undefined => {
        const id = `${partition}\u0000${hash}`
        if (forgotten === undefined) return undefined
        if (!suppressions.has(id)) {
          const bytes = forgotten.get(partition, hash)
          suppressions.set(id, bytes === undefined ? undefined : decodeSuppression(bytes))
        }
        return suppressions.get(id)
      }

      // Phase A: every deletion request of the batch, before any row change.
      const uncache = new Set<string>()
      const uncacheAll: string[] = []
      for (const [i, request] of requests) {
        const partition = batch[i].partition
        const hash = hashSubject(request.subject)
        const next = mergeSuppression(suppressionOf(partition, hash), suppressionFromRequest(request, mode))
        forgotten!.put(partition, hash, encodeSuppression(next)) // never a null: compaction must keep it
        suppressions.set(`${partition}\u0000${hash}`, next)
        const out: StageRow[] = []
        const removed: Record<string, number> = {}
        const count = (store: string): void => {
          removed[store] = (removed[store] ?? 0) + 1
        }
        let chunks = 0
        for (const [entity, timestamp] of [...index.subject(partition, hash)]) {
          if (!suppresses(next, timestamp)) continue
          for (const contentHash of index.entity(partition, entity)?.h ?? []) uncache.add(contentHash)
          index.unindex(partition, entity)
          index.drop(partition, hash, entity)
          count(indexName)
          for (const set of chunkSets) {
            const bytes = context.store(set.store).get(partition, `${set.entityType}:${entity}`)
            if (bytes !== undefined) chunks += decodeChunkSet(bytes).length
          }
          for (const name of entityStores) {
            const store = context.store(name)
            if (store.get(partition, entity) === undefined) continue
            store.delete(partition, entity)
            count(name)
          }
          out.push({ key: entity, value: null })
        }
        // Rows keyed by the subject itself (its metadata row, a join's reverse index) go only when the
        // subject is forgotten for good: under BEFORE_REQUEST its later entities stay indexed and
        // still need them.
        for (const [name, keyOf] of next.mode === 'FOREVER' ? subjectStores : []) {
          const key = keyOf(request.subject)
          const store = context.store(name)
          if (typeof key !== 'string' || store.get(partition, key) === undefined) continue
          store.delete(partition, key)
          count(name)
        }
        if (uncache.size > 0) removed['embedding-cache'] = uncache.size
        uncacheAll.push(...uncache)
        uncache.clear()
        const applied = deletionAppliedAudit({
          topology: app,
          topologyVersion,
          requestId: request.request_id,
          subjectHash: hash,
          partition,
          chunksTombstoned: chunks,
          storeKeysRemoved: removed,
          atMs: context.now,
        })
        out.push({
          key: applied.event_id,
          value: new AuditRecord({ ...applied, counts: { ...applied.counts, partitions } }),
        })
        results[i] = out
      }

      // Phase B: row changes in input order.
      const metrics = {
        emitted: 0,
        denied: 0,
        suppressed: 0,
        deleted: 0,
        requestsApplied: requests.size,
        entitiesForgotten: 0,
        redactions: {} as Record<string, number>,
      }
      for (const i of requests.keys()) metrics.entitiesForgotten += (results[i] as StageRow[]).length - 1
      batch.forEach((item, i) => {
        if (!(item.value instanceof EntityChange) || results[i] !== undefined) return
        const { partition, key } = item
        const before = index.entity(partition, key)
        const decided = rows.get(i)
        if (decided === undefined) {
          index.unindex(partition, key)
          results[i] = [{ key, value: null }]
          metrics.deleted++
          return
        }
        const { record, joined, subjects, hashes } = decided
        if (findSuppression(hashes, record.timestampMs, (h) => suppressionOf(partition, h)) !== undefined) {
          index.unindex(partition, key)
          results[i] = [{ key, value: null }]
          metrics.suppressed++
          return
        }
        let decision
        try {
          decision = policy.govern(record, joined, subjects)
        } catch (error) {
          results[i] = { error }
          return
        }
        if (decision.action === 'deny') {
          index.unindex(partition, key)
          results[i] = [
            { key, value: null },
            { key: decision.audit.event_id, value: new AuditRecord(decision.audit) },
          ]
          metrics.denied++
          return
        }
        metrics.emitted++
        for (const detector in decision.redactionCounts)
          metrics.redactions[detector] = (metrics.redactions[detector] ?? 0) + decision.redactionCounts[detector]
        const governed: GovernedDocument = {
          text: decision.text,
          metadata: decision.metadata,
          classification: decision.classification,
          region: decision.region,
          tenant: decided.tenant,
          subjects: decision.subjects,
          policy_version: decision.policyVersion,
          ...(decided.source === undefined ? {} : { _source: decided.source }),
        }
        const out: StageRow[] = [{ key, value: governed }]
        const redacted = policy.redactionAudit(record, decision)
        if (redacted !== undefined) out.push({ key: redacted.event_id, value: new AuditRecord(redacted) })
        if (before !== undefined && before.c !== decision.classification) {
          const reclassified = policy.reclassificationAudit(record, subjects, before.c, decision.classification)
          out.push({ key: reclassified.event_id, value: new AuditRecord(reclassified) })
        }
        let contentHashes: readonly string[] | undefined
        if (embeddingCache !== undefined) {
          try {
            contentHashes = [...embeddingCache.contentHashes(governed, key)]
          } catch (error) {
            results[i] = { error: userFailure('forget.embeddingCache.contentHashes', error) }
            return
          }
        }
        index.index(partition, key, hashes, decision.classification, record.timestampMs, contentHashes)
        results[i] = out
      })

      index.flush()
      options.observe?.(metrics)
      if (telemetryActive()) report({ kind: 'govern', node: name, ...metrics })
      // The cache is not transactional: deleting before the commit is safe (an aborted batch only
      // costs re-embedding), deleting after it could be skipped by a crash.
      if (embeddingCache !== undefined && uncacheAll.length > 0) {
        const namespace =
          typeof embeddingCache.namespace === 'function' ? embeddingCache.namespace() : embeddingCache.namespace
        await embeddingCache.cache.delete(namespace, [...new Set(uncacheAll)])
      }
      return results as StageResult[]
    }

    return [
      (key, _oldValue, newValue) => {
        items.push({
          key,
          value: new EntityChange(newValue, Number(scope.record.timestamp)),
          oldValue: undefined,
          partition: scope.record.partition,
        })
        origins.push(scope.record)
      },
    ]
  },
}
