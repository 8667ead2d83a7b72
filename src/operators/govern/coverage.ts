/**
 * Forgetting by construction: which stores of the topology hold a governed entity's or a data
 * subject's data, read off the graph, so a topology names subjects and never stores.
 *
 *   entity stores   keyed like govern's input (the entity key): the table source at the root of its
 *                   input and every materialized join result on the way (the "left spine");
 *   subject stores  keyed by a subject's id: every table source declared `subject: '<type>'` (its row
 *                   key is the id), and on each join reading such a table on its right side, the
 *                   join's subscription index and its re-homed right store.
 *   contributions   tables whose rows an aggregate gathers and that name each row's subject: a
 *                   forgotten subject's rows leave every aggregate they contributed to (the parent
 *                   stays, re-emitted without them), found in the table's row-subject index.
 * What a topology lists in `forget.entityStores` / `forget.subjectStores` is added to these.
 */
import { factsOf, nodeIs } from '../../topology/node-kinds.ts'
import { keepsRowSubjects, rowSubjectsStore } from '../table-source.ts'
import {
  forgetRepartitionTopic,
  rightStore,
  subscriptionStore,
  subscriptionTopic,
  type GovernNode,
  type TopologyGraph,
  type TopologyNode,
} from '../../topology/graph.ts'

type SubjectKey = (subject: string) => string | null

function byName(graph: TopologyGraph, name: string): TopologyNode | undefined {
  return graph.nodes.find((n) => n.name === name)
}

/** The table a node reads through pass-through nodes (a source, a join or an aggregate result), if any. */
function tableRoot(graph: TopologyGraph, name: string): TopologyNode | undefined {
  let node = byName(graph, name)
  while (node !== undefined && factsOf(node).table === 'chain') node = byName(graph, node.inputs[0])
  return node !== undefined && factsOf(node).table === 'root' ? node : undefined
}

/** A table's result is materialized (a store named after it) when a node reading tables reads it. */
function isMaterialized(graph: TopologyGraph, table: string): boolean {
  return graph.nodes.some(
    (n) => factsOf(n).readsTables === true && n.inputs.some((i) => tableRoot(graph, i)?.name === table),
  )
}

/** Stores keyed by govern's entity key, derived from the graph. */
export function derivedEntityStores(node: GovernNode, graph: TopologyGraph): string[] {
  const stores: string[] = []
  let table = tableRoot(graph, node.inputs[0])
  while (table !== undefined) {
    if (factsOf(table).role === 'source') {
      stores.push(table.name)
      break
    }
    if (!nodeIs(table, 'fk-join')) break
    if (isMaterialized(graph, table.name)) stores.push(table.name)
    table = tableRoot(graph, table.inputs[0])
  }
  return stores
}

/** Stores keyed by a subject's id, derived from the sources that declare `subject: '<type>'`. */
export function derivedSubjectStores(graph: TopologyGraph): [string, SubjectKey][] {
  const stores: [string, SubjectKey][] = []
  for (const source of graph.nodes) {
    if (!nodeIs(source, 'table-source') || typeof source.subject !== 'string') continue
    const prefix = `${source.subject}:`
    const keyOf: SubjectKey = (subject) => (subject.startsWith(prefix) ? subject.slice(prefix.length) : null)
    stores.push([source.name, keyOf])
    for (const join of graph.nodes)
      if (nodeIs(join, 'fk-join') && tableRoot(graph, join.inputs[1])?.name === source.name)
        stores.push([subscriptionStore(join.name), keyOf], [rightStore(join.name), keyOf])
  }
  return stores
}

/** A join on govern's input whose left input is a stored table root: a forgotten entity unsubscribes from it. */
export interface SpineJoin {
  readonly join: string
  /** The store holding the join's left value for an entity (its left input, read as stored JSON). */
  readonly leftStore: string
  readonly foreignKey: (left: unknown) => string | null | undefined
  readonly subscriptionTopic: string
}

/**
 * The joins on govern's left spine whose left input is the table root itself (no filter/mapValues in
 * between, so the stored JSON is the join's left value). Forgetting an entity sends each of them the
 * unsubscribe a left delete would, so the subscription index on the right owner forgets its key too.
 */
export function spineJoins(node: GovernNode, graph: TopologyGraph): SpineJoin[] {
  const joins: SpineJoin[] = []
  let table = tableRoot(graph, node.inputs[0])
  while (table !== undefined && nodeIs(table, 'fk-join')) {
    const left = byName(graph, table.inputs[0])
    const root = tableRoot(graph, table.inputs[0])
    if (
      left !== undefined &&
      root !== undefined &&
      left.name === root.name &&
      (factsOf(root).role === 'source' || isMaterialized(graph, root.name))
    )
      joins.push({
        join: table.name,
        leftStore: root.name,
        foreignKey: table.foreignKey,
        subscriptionTopic: subscriptionTopic(graph.applicationId, table.name),
      })
    table = root
  }
  return joins
}

/** A table whose rows contribute to aggregates, by subject: where govern finds them and sends their keys. */
export interface ContributionTable {
  readonly table: string
  /** `<table>-subjects`: groupedKey(subject hash, row key) for each row. */
  readonly index: string
  /** The table's forget topic: a row key sent there is deleted by the table's task, as a delete would. */
  readonly topic: string
}

/** Every table that keeps its row keys per subject for its aggregates (see keepsRowSubjects). */
export function contributionTables(graph: TopologyGraph): ContributionTable[] {
  return graph.nodes.flatMap((n) =>
    nodeIs(n, 'table-source') && keepsRowSubjects(n, graph)
      ? [{ table: n.name, index: rowSubjectsStore(n.name), topic: forgetRepartitionTopic(graph.applicationId, n.name) }]
      : [],
  )
}

/** Every entity store: derived, then the topology's own list. */
export function entityStoresOf(node: GovernNode, graph: TopologyGraph): string[] {
  return [...new Set([...derivedEntityStores(node, graph), ...(node.options?.forget?.entityStores ?? [])])]
}

/** Every subject store: derived, then the topology's own (which win for a store named in both). */
export function subjectStoresOf(node: GovernNode, graph: TopologyGraph): [string, SubjectKey][] {
  const stores = new Map(derivedSubjectStores(graph))
  for (const [store, keyOf] of Object.entries(node.options?.forget?.subjectStores ?? {})) stores.set(store, keyOf)
  return [...stores]
}
