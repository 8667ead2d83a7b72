/**
 * The exhaustive node-kind table: every `NodeKind` maps to its operator's spec, so adding a kind to
 * graph.ts fails `tsc` here until an operator handles validation, stores, describe and compile.
 */
import { chunkEmbedOperator } from '../operators/chunk-embed.ts'
import { filterOperator } from '../operators/filter.ts'
import { fkJoinOperator } from '../operators/fk-join/index.ts'
import { governOperator } from '../operators/govern/index.ts'
import { mapValuesOperator } from '../operators/map-values.ts'
import { sinkOperator } from '../operators/sink.ts'
import { stageOperator } from '../operators/stage.ts'
import { tableSourceOperator } from '../operators/table-source.ts'
import type { NodeKindSpec } from './compiled.ts'
import type { NodeKind, NodeOf, TopologyNode } from './graph.ts'

export const NODE_KINDS: { readonly [K in NodeKind]: NodeKindSpec<NodeOf<K>> } = {
  'table-source': tableSourceOperator,
  filter: filterOperator,
  'map-values': mapValuesOperator,
  'fk-join': fkJoinOperator,
  stage: stageOperator,
  govern: governOperator,
  'chunk-embed': chunkEmbedOperator,
  sink: sinkOperator,
}

/** The spec of a node's kind, typed for that node. */
export function kindOf<N extends TopologyNode>(node: N): NodeKindSpec<N> {
  return NODE_KINDS[node.kind] as unknown as NodeKindSpec<N>
}
