/**
 * `stage`: the extension point govern / chunk / embed plug into. A stage is async and batched: during
 * the synchronous pass over a batch its input changes are buffered; after the pass each stage (in
 * topology order) gets its whole buffer in one `process` call — the batch's I/O edge — and its rows
 * flow on synchronously. A stage may own stores (e.g. a chunk-set store); it prefetches the keys it
 * reads itself through `context.store(name).prefetch(...)`, once per batch.
 */
import type { SourceRecord } from '../runtime/task.ts'
import { CHANGELOG_CONFIG, type NodeKindSpec, type StageBuffer } from '../topology/compiled.ts'
import { changelogTopic, type StageItem, type StageNode, type StageProcessor } from '../topology/graph.ts'

export interface StageOptions<V = unknown, O = unknown> {
  /** Required when the stage owns stores (the name is then their identity); else generated. */
  readonly name?: string
  /** What the stage is, for describe: `govern`, `chunk`, `embed`, ... */
  readonly kind: string
  /** Stores the stage owns; each gets a compacted changelog. */
  readonly stores?: readonly string[]
  readonly processor: StageProcessor<V, O>
}

export function stageNode<V, O>(name: string, named: boolean, input: string, options: StageOptions<V, O>): StageNode {
  return Object.freeze({
    kind: 'stage',
    name,
    named,
    inputs: Object.freeze([input]),
    stageKind: options.kind,
    stores: Object.freeze([...(options.stores ?? [])]),
    processor: options.processor as StageProcessor,
  })
}

export const stageOperator: NodeKindSpec<StageNode> = {
  // Named only when it owns stores: its validate says so.
  facts: { stateful: false },
  validate(node, _graph, problem) {
    if (typeof node.stageKind !== 'string' || node.stageKind === '') problem('kind', 'required, e.g. chunk')
    if (node.processor === null || typeof node.processor !== 'object' || typeof node.processor.process !== 'function') {
      problem('processor', 'required: an object with process(items, context)')
    }
    if (node.stores.length > 0 && !node.named)
      problem('name', 'required: a stage with stores is stateful; its name identifies it')
  },
  stores: (node) => node.stores,
  internalTopics: (node, graph) =>
    node.stores.map((store) => ({
      name: changelogTopic(graph.applicationId, store),
      role: 'changelog' as const,
      store,
      purpose: `changelog of store ${store}`,
      config: CHANGELOG_CONFIG,
    })),
  physical: (node) => ({
    nodes: [
      {
        type: 'processor',
        name: node.name,
        stores: node.stores,
        detail: `stage: ${node.stageKind}, async, batched`,
        next: [],
      },
    ],
    entries: [node.name],
    exit: node.name,
  }),
  compile(node, env) {
    const { scope } = env
    const items: StageItem[] = []
    const origins: SourceRecord[] = []
    const buffer: StageBuffer = { node, items, origins, emit: env.downstream(node.name) }
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
