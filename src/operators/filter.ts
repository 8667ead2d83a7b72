/**
 * `filter`: keeps the rows a predicate accepts. On a table, a row that stops matching becomes a
 * tombstone downstream; a change where neither the old nor the new row matches is not forwarded.
 */
import { type NodeKindSpec, singleProcessor } from '../topology/compiled.ts'
import { userFunction } from '../topology/user-code.ts'
import type { FilterNode } from '../topology/graph.ts'

export interface FilterOptions {
  /** Optional for this stateless node; generated (`KTABLE-FILTER-<n>`) when absent. */
  readonly name?: string
}

export function filterNode(
  name: string,
  named: boolean,
  input: string,
  predicate: FilterNode['predicate'],
): FilterNode {
  return Object.freeze({ kind: 'filter', name, named, inputs: Object.freeze([input]), predicate })
}

export const filterOperator: NodeKindSpec<FilterNode> = {
  facts: { stateful: false, table: 'chain' },
  validate(node, _graph, problem) {
    if (typeof node.predicate !== 'function') problem('predicate', 'required: a function (value, key) => boolean')
  },
  stores: () => [],
  internalTopics: () => [],
  physical: singleProcessor,
  getter(node, _graph, upstream) {
    const predicate = userFunction(node.name, node.predicate)
    const parent = upstream(node.inputs[0])
    return {
      store: parent.store,
      topics: parent.topics,
      get(bytes, key) {
        const value = parent.get(bytes, key)
        return value !== null && predicate(value, key) ? value : null
      },
    }
  },
  compile(node, env) {
    const { name } = node
    const predicate = userFunction(name, node.predicate)
    const emit = env.downstream(name)
    return [
      (key, oldValue, newValue) => {
        const oldKept =
          oldValue === undefined || oldValue === null ? oldValue : predicate(oldValue, key) ? oldValue : null
        const newKept = newValue !== null && predicate(newValue, key) ? newValue : null
        if (oldKept === null && newKept === null) return
        emit(key, oldKept, newKept)
      },
    ]
  },
}
