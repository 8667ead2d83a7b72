/**
 * The exhaustive node-kind table: every `NodeKind` maps to its operator's spec, so adding a kind to
 * graph.ts fails `tsc` here until an operator handles validation, stores, describe and compile.
 */
import { aggregateOperator } from '../operators/aggregate/index.ts'
import { chunkEmbedOperator } from '../operators/chunk-embed.ts'
import { filterOperator } from '../operators/filter.ts'
import { fkJoinOperator } from '../operators/fk-join/index.ts'
import { governOperator } from '../operators/govern/index.ts'
import { mapValuesOperator } from '../operators/map-values.ts'
import { peekOperator } from '../operators/peek.ts'
import { sinkOperator } from '../operators/sink.ts'
import { stageOperator } from '../operators/stage.ts'
import { tableSourceOperator } from '../operators/table-source.ts'
import type { SourceRecord } from '../runtime/task.ts'
import type { NodeKindSpec } from './compiled.ts'
import type { NodeKind, NodeOf, TopologyGraph, TopologyNode } from './graph.ts'

type NodeKindTable = { readonly [K in NodeKind]: NodeKindSpec<NodeOf<K>> }

// Built on first use: operator modules import the helpers below, so the table cannot be evaluated
// while they are still loading (an import cycle resolved at call time, not at module evaluation).
let table: NodeKindTable | undefined

function nodeKinds(): NodeKindTable {
  return (table ??= {
    'table-source': tableSourceOperator,
    filter: filterOperator,
    'map-values': mapValuesOperator,
    peek: peekOperator,
    'fk-join': fkJoinOperator,
    aggregate: aggregateOperator,
    stage: stageOperator,
    govern: governOperator,
    'chunk-embed': chunkEmbedOperator,
    sink: sinkOperator,
  })
}

/** Whether `kind` names a node kind (graphs built by hand may carry anything). */
export function isNodeKind(kind: unknown): kind is NodeKind {
  return typeof kind === 'string' && Object.hasOwn(nodeKinds(), kind)
}

/** The spec of a node's kind, typed for that node. */
export function kindOf<N extends TopologyNode>(node: N): NodeKindSpec<N> {
  return nodeKinds()[node.kind] as unknown as NodeKindSpec<N>
}

/*
 * The questions graph-wide code asks about a node, answered from its kind's spec: nothing outside
 * this table branches on `node.kind`, so a new kind declares its facts once and validation, topics
 * and compile follow.
 */

export function factsOf(node: TopologyNode): NodeKindSpec<TopologyNode>['facts'] {
  return kindOf(node).facts
}

/** External topics the node reads (its rows' or requests' sources). */
export function externalReads(node: TopologyNode, graph: TopologyGraph): readonly string[] {
  return kindOf(node).externalTopics?.(node, graph).reads ?? []
}

/** External topics the node writes (outputs, audit events). */
export function externalWrites(node: TopologyNode, graph: TopologyGraph): readonly string[] {
  return kindOf(node).externalTopics?.(node, graph).writes ?? []
}

export function foreignStoresOf(node: TopologyNode, graph: TopologyGraph): readonly string[] {
  return kindOf(node).foreignStores?.(node, graph) ?? []
}

export function preparerOf(
  node: TopologyNode,
): { readonly topic: string; prepare(records: readonly SourceRecord[]): Promise<void> } | undefined {
  return kindOf(node).preparer?.(node)
}

/**
 * Whether `node` is of `kind`, typed for it: the one place an operator asks for a partner operator by
 * kind (govern's chunk-embed consumers, toChunks' chunk-embed input, forgetting's FK joins). Structural
 * questions (chain or table root, source, external topics, stores) go through the facts above instead.
 */
export function nodeIs<K extends NodeKind>(node: TopologyNode, kind: K): node is NodeOf<K> {
  return node.kind === kind
}

/**
 * The materialized table a join input reads through passing-through nodes only — a table root (a
 * source, or a join whose result is then materialized); undefined if there is none (e.g. a stage's output).
 */
export function tableRoot(graph: TopologyGraph, name: string): string | undefined {
  const byName = new Map(graph.nodes.map((n) => [n.name, n]))
  for (let node = byName.get(name); node !== undefined; node = byName.get(node.inputs[0] ?? '')) {
    const table = factsOf(node).table
    if (table === 'root') return node.name
    if (table !== 'chain') return undefined
  }
  return undefined
}
