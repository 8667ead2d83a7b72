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
 *
 * Files, by role (named like the nodes `describe` prints):
 *   index.ts              the node kind: factory, validation, stores and topics, physical nodes, compile
 *   options.ts            what a topology writes in `govern({...})` and the GovernedDocument it gets
 *   deletion-requests.ts  decoding and checking deletion requests (`<name>-deletions-broadcast`)
 *   plan.ts               what a batch needs, resolved once at compile time
 *   batch.ts              one batch of the `<name>` processor: decode, prefetch, apply requests, apply rows
 *   forget.ts             one deletion request applied (the forget anti-join's write side)
 *   coverage.ts           which stores and joins hold a subject's data, read off the graph
 *   subject-index.ts      the `<name>-subject-index` store's batch view
 *   prefetch-round.ts     the keys (and scan prefixes) of one prefetch round
 *   items.ts              what the stage buffers and emits besides rows (requests, audit, unsubscribes)
 *   redact-at-source.ts   redaction before a source table materializes its rows
 */
import type { TemplateFields } from '../../chunking/template.ts'
import type { TailServices } from '../../config/rag-services.ts'
import { ConfigError } from '../../errors.ts'
import type { AuditEventValue } from '../../governance/audit.ts'
import { compilePolicy, type CompiledPolicy } from '../../governance/policy.ts'
import type { SourceRecord } from '../../runtime/task.ts'
import {
  CHANGELOG_CONFIG,
  REPARTITION_CONFIG,
  type InternalTopic,
  type NodeKindSpec,
  type StageBuffer,
} from '../../topology/compiled.ts'
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
  type ChunkEmbedNode,
  type TopologyGraph,
} from '../../topology/graph.ts'
import { encodeJson } from '../../topology/json.ts'
import { externalReads, factsOf, nodeIs } from '../../topology/node-kinds.ts'
import { partitionForString } from '../../topology/partitioner.ts'
import { GovernBatch } from './batch.ts'
import type { GovernPlan } from './plan.ts'
import { contributionTables, entityStoresOf, spineJoins, subjectStoresOf } from './coverage.ts'
import { jsonRequests } from './deletion-requests.ts'
import { AuditRecord, EntityChange, ForgetCopy, InternalRecord } from './items.ts'
import { chunkSetStore } from '../chunk-embed.ts'
import { governAuditOutput, governAuditTopic as auditTopic } from '../audit-outputs.ts'
import type { ForgetOptions, GovernNodeOptions, GovernOptions } from './options.ts'

export type {
  AuditOutput,
  DeletionRequestDecoder,
  ForgetOptions,
  GovernBatchMetrics,
  GovernDocumentInput,
  GovernedDocument,
  GovernNodeOptions,
  GovernOptions,
} from './options.ts'
export { redactAtSource, type RedactAtSourceOptions } from './redact-at-source.ts'

export function governNode<V>(name: string, named: boolean, input: string, options: GovernOptions<V>): GovernNode {
  return Object.freeze({
    kind: 'govern',
    name,
    named,
    inputs: Object.freeze([input]),
    options: options as GovernNodeOptions,
  })
}

function compiled(node: GovernNode, graph: TopologyGraph): CompiledPolicy {
  return compilePolicy(node.options.policy, {
    topology: graph.applicationId,
    topologyVersion: node.options.topologyVersion,
    env: node.options.env ?? process.env,
    path: `/topology/nodes/${node.name}/policy`,
  })
}

/** The chunk-embed nodes fed straight by this govern: their chunk sets and cached vectors are the subject's. */
function chunkNodesOf(node: GovernNode, graph: TopologyGraph): ChunkEmbedNode[] {
  return graph.nodes.filter((n): n is ChunkEmbedNode => nodeIs(n, 'chunk-embed') && n.inputs[0] === node.name)
}

/** The chunk sets forgetting counts: the ones named, else every chunk-embed node fed by this govern. */
function chunkSetsOf(node: GovernNode, graph: TopologyGraph): NonNullable<ForgetOptions['chunkSets']> {
  return (
    node.options?.forget?.chunkSets ??
    chunkNodesOf(node, graph).map((n) => ({ store: chunkSetStore(n.name), entityType: n.options.chunk.entityType }))
  )
}

/** Stores of other nodes that forgetting reads or cleans (validate.ts checks they exist). */
export function foreignStores(node: GovernNode, graph: TopologyGraph): string[] {
  const forget = node.options?.forget
  if (forget === undefined || forget === null) return []
  return [
    ...entityStoresOf(node, graph),
    ...subjectStoresOf(node, graph).map(([store]) => store),
    ...chunkSetsOf(node, graph).map((c) => c.store),
    ...contributionTables(graph).map((c) => c.index),
  ]
}

/**
 * The embedding cache entries forgetting deletes: the ones configured, else, for a chunk-embed node
 * fed by this govern that embeds with the services' embedder, the content hashes its chunker makes of
 * a governed row (the same chunker and the same text and fields, so the same hashes).
 */
function embeddingCacheOf(
  node: GovernNode,
  graph: TopologyGraph,
  services: TailServices | undefined,
): ForgetOptions['embeddingCache'] {
  const forget = node.options.forget
  if (forget?.embeddingCache !== undefined || forget === undefined || services === undefined)
    return forget?.embeddingCache
  const chunkers = chunkNodesOf(node, graph).filter((n) => n.options.embed.embedder === undefined)
  if (chunkers.length === 0) return undefined
  const app = graph.applicationId
  return {
    cache: services.embeddingCache,
    namespace: () => services.embedder.model,
    contentHashes: (doc, key) =>
      chunkers.flatMap((n) => {
        const { chunk, chunker } = n.options
        return chunker!
          .chunk({
            topology: app,
            entityType: chunk.entityType,
            entityKey: key,
            text: chunk.text === undefined ? doc.text : chunk.text(doc, key),
            fields: chunk.fields === undefined ? (doc.metadata as TemplateFields) : chunk.fields(doc, key),
          })
          .map((c) => c.contentHash)
      }),
  }
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

export const governOperator: NodeKindSpec<GovernNode> = {
  // Stateful, but its validate requires the name with its own reason (stores and broadcast topic).
  facts: { stateful: false },
  externalTopics: (node, graph) => {
    const forget = node.options?.forget
    const audit = auditTopic(node, graph)
    return {
      reads: forget !== undefined && forget !== null ? [forget.deletionsTopic] : [],
      writes: audit === undefined ? [] : [audit],
    }
  },
  foreignStores: (node, graph) => foreignStores(node, graph),
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
      else if (
        graph.nodes.some((n) => factsOf(n).role === 'source' && externalReads(n, graph).includes(forget.deletionsTopic))
      )
        problem('forget/deletionsTopic', `'${forget.deletionsTopic}' is also read as a table`)
      if (forget.mode !== undefined && forget.mode !== 'FOREVER' && forget.mode !== 'BEFORE_REQUEST')
        problem('forget/mode', 'must be FOREVER or BEFORE_REQUEST')
      // That the stores it names exist is checked graph-wide in validate.ts (it knows every kind's stores).
      for (const [store, key] of Object.entries(forget.subjectStores ?? {}))
        if (typeof key !== 'function')
          problem(`forget/subjectStores/${store}`, 'must be a function (subject) => key | null')
    }
    const audit = options.audit
    if (audit === undefined) {
      if (auditTopic(node, graph) === undefined)
        problem('audit', 'required: { topic, encode? } (or write chunk events downstream with toChunks)')
    } else if (audit === null || typeof audit !== 'object') problem('audit', 'must be { topic, encode? }')
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
      stores: [...ownStores(node), ...foreignStores(node, graph)],
      detail,
      next: [`${name}-audit-sink`],
    })
    const auditSink = { type: 'sink' as const, name: `${name}-audit-sink`, topic: auditTopic(node, graph), next: [] }
    // Forgetting per contribution: a forgotten subject's rows go back to their table's task, keys only.
    const forgetSinks = (forget === undefined ? [] : contributionTables(graph)).map((c) => ({
      type: 'sink' as const,
      name: `${name}-${c.table}-forget-sink`,
      topic: c.topic,
      next: [],
    }))
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
        {
          ...governor(`govern: ${policy}, forget ${forget.mode ?? 'FOREVER'}, async, batched`),
          next: [`${name}-audit-sink`, ...forgetSinks.map((s) => s.name)],
        },
        auditSink,
        ...forgetSinks,
      ],
      entries: [name],
      exit: name,
    }
  },
  compile(node, env) {
    const { scope, partitions } = env
    const { name, options } = node
    const app = env.graph.applicationId
    const forget = options.forget
    const audit = governAuditOutput(node, env.graph, env.services)
    const broadcast = deletionBroadcastTopic(app, name)
    const plan: GovernPlan = {
      name,
      app,
      topologyVersion: options.topologyVersion,
      partitions,
      policy: compiled(node, env.graph),
      options,
      audit,
      services: env.services,
      mode: forget?.mode ?? 'FOREVER',
      decoder:
        forget?.decode ??
        (forget === undefined ? jsonRequests : (env.services?.deletionRequests(forget.deletionsTopic) ?? jsonRequests)),
      forgottenStore: forget === undefined ? undefined : forgottenSubjectsStore(name),
      indexStore: subjectIndexStore(name),
      entityStores: forget === undefined ? [] : entityStoresOf(node, env.graph),
      subjectStores: forget === undefined ? [] : subjectStoresOf(node, env.graph),
      spineJoins: forget === undefined ? [] : spineJoins(node, env.graph),
      contributions: forget === undefined ? [] : contributionTables(env.graph),
      chunkSets: forget === undefined ? [] : chunkSetsOf(node, env.graph),
      embeddingCache: embeddingCacheOf(node, env.graph, env.services),
    }
    const encodeAudit = audit.encode ?? ((event: AuditEventValue) => encodeJson(event))
    const auditPartitions = env.sinkPartitions(audit.topic)
    const downstream = env.downstream(name)

    const items: StageItem[] = []
    const origins: SourceRecord[] = []
    const stageNode: StageNode = Object.freeze({
      kind: 'stage',
      name,
      named: true,
      inputs: node.inputs,
      stageKind: 'govern',
      stores: Object.freeze([...ownStores(node), ...foreignStores(node, env.graph)]),
      processor: {
        process: (batch: readonly StageItem[], context: StageContext) => new GovernBatch(plan, batch, context).run(),
      },
    })
    const buffer: StageBuffer = {
      node: stageNode,
      items,
      origins,
      emit(key, oldValue, value) {
        if (value instanceof InternalRecord) {
          scope.out.push({ topic: value.topic, partition: value.partition, key: value.key, value: value.value })
          return
        }
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

    if (forget !== undefined) {
      // Deletions topic → every partition of the broadcast topic, bytes unchanged (decoded by each task's stage).
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
      env.addTopic(broadcast, {
        node: name,
        decode: (record) => ({ key: record.key === null ? '' : record.key.toString('utf8'), value: null }),
        handle(record) {
          items.push({
            key: '',
            value: new ForgetCopy(record.value),
            oldValue: undefined,
            partition: record.partition,
            timestamp: scope.timestamp,
            appendedAt: scope.appendedAt,
            origin: scope.origin,
          })
          origins.push(record)
        },
      })
    }

    return [
      (key, _oldValue, newValue) => {
        items.push({
          key,
          value: new EntityChange(newValue, scope.timestamp),
          oldValue: undefined,
          partition: scope.record.partition,
          timestamp: scope.timestamp,
          appendedAt: scope.appendedAt,
          origin: scope.origin,
        })
        origins.push(scope.record)
      },
    ]
  },
}
