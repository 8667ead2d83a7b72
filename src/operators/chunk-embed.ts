/**
 * `chunk(…).embed(…)`: the RAG tail's chunk → diff → embed step as a DSL operator. It is the batched
 * chunk stage of src/chunking/chunk-embed-stage.ts (chunk sets per entity, upserts before tombstones,
 * one embedder call per batch), with what a topology used to wire by hand done by the framework:
 *   - the embedder (and its cache) come from the services the topology is compiled with (an app's
 *     deployment, or the test driver's in-memory services), opened before the first batch;
 *   - its chunk-set store is `<name>-chunk-sets`, and govern upstream finds it (and the chunker, to
 *     uncache a forgotten subject's vectors) by construction;
 *   - after a `govern`, text, template fields, metadata and governance columns default to the
 *     governed document's.
 * `toChunks(topic)` after it writes the chunk table's changelog in the services' chunk-event encoding.
 */
import type { RowLineage } from '../cdc/table-decoder.ts'
import { chunkEmbedStage, type ChunkGovernance } from '../chunking/chunk-embed-stage.ts'
import { createChunker, type Chunker, type ChunkerConfig } from '../chunking/chunker.ts'
import type { TemplateFields } from '../chunking/template.ts'
import type { Embedder } from '../embedding/embedder.ts'
import type { PrecomputedEmbeddingConfig } from '../embedding/precomputed.ts'
import { ConfigError } from '../errors.ts'
import type { SourceRecord } from '../runtime/task.ts'
import { CHANGELOG_CONFIG, type NodeKindSpec, type StageBuffer } from '../topology/compiled.ts'
import {
  changelogTopic,
  type ChunkEmbedNode,
  type StageContext,
  type StageItem,
  type StageNode,
  type TopologyNode,
} from '../topology/graph.ts'
import { nodeIs } from '../topology/node-kinds.ts'
import type { GovernedDocument } from './govern/options.ts'

/** Options of `table.chunk(…)`: how each row becomes chunks. */
export interface ChunkOptions<V> {
  /** Names the node and its chunk-set store (`<name>-chunk-sets`); default `chunk-embed`. */
  readonly name?: string
  /** What one row is (`ticket`, `article`): part of every chunk id and of the chunk-set keys. */
  readonly entityType: string
  /** How to split; default `{ kind: 'recursive', size: 600, overlap: 0 }` (characters). */
  readonly strategy?: ChunkerConfig['strategy']
  /** `markdown` or `html` to convert to plain text first; default none. */
  readonly markup?: ChunkerConfig['markup']
  /** Prepended context per chunk, e.g. `'{title}\n\n{text}'`; placeholders come from `fields`. Default `{text}`. */
  readonly template?: string
  /** The text to chunk; default the governed document's `text` (after `govern`), else required. */
  readonly text?: (value: V, key: string) => string
  /** Template placeholders; default the governed document's metadata, else the row itself. */
  readonly fields?: (value: V, key: string) => TemplateFields
  /** Metadata stored with each chunk (JSON); default the governed document's metadata, else `{}`. */
  readonly metadata?: (value: V, key: string) => Readonly<Record<string, unknown>>
  /** Governance columns; default the governed document's classification, tenant, region, subjects, policy. */
  readonly governance?: (value: V, key: string) => ChunkGovernance
  /** Where the row came from; default its `_source` field (set by cdcTableDecoder, kept by govern). */
  readonly lineage?: (value: V, key: string) => RowLineage | undefined
}

/** Options of `.embed(…)`. */
export interface EmbedOptions {
  /**
   * Default: the services' embedder (the app's configured model; `hashing` in the test driver).
   * `{ precomputed }` takes one vector per entity from a field instead (single-chunk entities).
   */
  readonly embedder?: Embedder | { readonly precomputed: PrecomputedEmbeddingConfig }
}

/** What the node keeps: the options as given, and the chunker built from them (validated at build). */
export interface ChunkEmbedNodeOptions {
  readonly chunk: ChunkOptions<any>
  readonly embed: EmbedOptions
  /** Undefined when the chunk options were invalid (validation reports why). */
  readonly chunker: Chunker | undefined
  readonly chunkerProblems: readonly { readonly path: string; readonly message: string }[]
}

export const DEFAULT_CHUNK_STRATEGY = { kind: 'recursive', size: 600, overlap: 0 } as const

/** The chunk-set store of a chunk-embed node. */
export function chunkSetStore(node: string): string {
  return `${node}-chunk-sets`
}

export function chunkEmbedNode<V>(
  name: string,
  input: string,
  chunk: ChunkOptions<V>,
  embed: EmbedOptions,
): ChunkEmbedNode {
  let chunker: Chunker | undefined
  let chunkerProblems: ChunkEmbedNodeOptions['chunkerProblems'] = []
  try {
    chunker = createChunker({
      strategy: chunk?.strategy ?? DEFAULT_CHUNK_STRATEGY,
      markup: chunk?.markup,
      template: chunk?.template,
    })
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    chunkerProblems = error.problems
  }
  return Object.freeze({
    kind: 'chunk-embed',
    name,
    named: true,
    inputs: Object.freeze([input]),
    options: Object.freeze({ chunk: chunk ?? ({} as ChunkOptions<V>), embed: embed ?? {}, chunker, chunkerProblems }),
  })
}

/** True when the node's input is a govern node: text, fields, metadata and governance then default to the document's. */
function afterGovern(node: ChunkEmbedNode, graph: { readonly nodes: readonly TopologyNode[] }): boolean {
  return graph.nodes.some((n) => n.name === node.inputs[0] && nodeIs(n, 'govern'))
}

const governedDefaults = {
  text: (doc: GovernedDocument) => doc.text,
  fields: (doc: GovernedDocument) => doc.metadata as TemplateFields,
  metadata: (doc: GovernedDocument) => doc.metadata,
  governance: (doc: GovernedDocument): ChunkGovernance => ({
    classification: doc.classification,
    tenant: doc.tenant,
    region: doc.region,
    subjects: doc.subjects,
    policy_version: doc.policy_version,
  }),
}

export const chunkEmbedOperator: NodeKindSpec<ChunkEmbedNode> = {
  facts: { stateful: false },
  validate(node, graph, problem) {
    const { chunk, embed, chunkerProblems } = node.options
    if (typeof chunk.entityType !== 'string' || !/^[a-z][a-z0-9_-]*$/.test(chunk.entityType))
      problem('chunk/entityType', 'required: a lower-case name of what one row is, e.g. ticket')
    for (const p of chunkerProblems) problem(`chunk/${p.path.replace(/^\//, '')}`, p.message)
    for (const field of ['text', 'fields', 'metadata', 'governance', 'lineage'] as const)
      if (chunk[field] !== undefined && typeof chunk[field] !== 'function')
        problem(`chunk/${field}`, 'must be a function (row, key) => …')
    if (chunk.text === undefined && !afterGovern(node, graph))
      problem('chunk/text', 'required unless the input is govern: (row, key) => the text to chunk')
    if (embed.embedder !== undefined && (embed.embedder === null || typeof embed.embedder !== 'object'))
      problem('embed/embedder', 'must be an Embedder or { precomputed: { field, dimensions } }')
  },
  stores: (node) => [chunkSetStore(node.name)],
  internalTopics: (node, graph) => [
    {
      name: changelogTopic(graph.applicationId, chunkSetStore(node.name)),
      role: 'changelog' as const,
      store: chunkSetStore(node.name),
      purpose: `changelog of store ${chunkSetStore(node.name)}`,
      config: CHANGELOG_CONFIG,
    },
  ],
  physical: (node) => ({
    nodes: [
      {
        type: 'processor',
        name: node.name,
        stores: [chunkSetStore(node.name)],
        detail: `chunk ${node.options.chunk.entityType} (${node.options.chunker?.id ?? '?'}) → diff → embed, async, batched`,
        next: [],
      },
    ],
    entries: [node.name],
    exit: node.name,
  }),
  compile(node, env) {
    const { scope, services } = env
    const { chunk, embed } = node.options
    const embedder = embed.embedder ?? services?.embedder
    if (embedder === undefined)
      throw new ConfigError(
        [
          {
            path: `/topology/nodes/${node.name}/embed`,
            message: 'no embedder: the topology was compiled without services',
          },
        ],
        'topology',
        'RS_TOPOLOGY_INVALID',
        'build it from an app deployment (new TopologyBuilder({ applicationId, services: deployment.services })), run it in the TopologyTestDriver (in-memory services), or pass embed({ embedder })',
      )
    const governed = afterGovern(node, env.graph)
    const stage = chunkEmbedStage<unknown>({
      topology: env.graph.applicationId,
      version: env.graph.version ?? 'v1',
      entityType: chunk.entityType,
      store: chunkSetStore(node.name),
      chunker: node.options.chunker!,
      embedder,
      text: chunk.text ?? (governed ? (governedDefaults.text as (v: unknown) => string) : () => ''),
      fields: chunk.fields ?? (governed ? (governedDefaults.fields as (v: unknown) => TemplateFields) : undefined),
      metadata:
        chunk.metadata ??
        (governed ? (governedDefaults.metadata as (v: unknown) => Record<string, unknown>) : undefined),
      governance:
        chunk.governance ?? (governed ? (governedDefaults.governance as (v: unknown) => ChunkGovernance) : undefined),
      lineage: chunk.lineage,
    })
    const stageNode: StageNode = Object.freeze({
      kind: 'stage',
      name: node.name,
      named: true,
      inputs: node.inputs,
      stageKind: 'chunk+embed',
      stores: Object.freeze([chunkSetStore(node.name)]),
      processor: {
        async process(items: readonly StageItem[], context: StageContext) {
          if (services !== undefined) await services.open()
          return stage.process(items, context)
        },
        prefetchAhead: stage.prefetchAhead,
      },
    })
    const items: StageItem[] = []
    const origins: SourceRecord[] = []
    const buffer: StageBuffer = { node: stageNode, items, origins, emit: env.downstream(node.name) }
    env.addStage(buffer)
    return [
      (key, oldValue, newValue) => {
        items.push({
          key,
          value: newValue,
          oldValue,
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
