/**
 * `mapValues`: transforms each row's value; the key (and so the partition) stays. Returning null or
 * undefined deletes the row downstream.
 */
import { type NodeKindSpec, singleProcessor } from '../topology/compiled.ts'
import { userFunction } from '../topology/user-code.ts'
import type { MapValuesNode } from '../topology/graph.ts'

export interface MapValuesOptions {
  /** Optional for this stateless node; generated (`KTABLE-MAPVALUES-<n>`) when absent. */
  readonly name?: string
}

export function mapValuesNode(
  name: string,
  named: boolean,
  input: string,
  mapper: MapValuesNode['mapper'],
): MapValuesNode {
  return Object.freeze({ kind: 'map-values', name, named, inputs: Object.freeze([input]), mapper })
}

export const mapValuesOperator: NodeKindSpec<MapValuesNode> = {
  facts: { stateful: false, table: 'chain' },
  validate(node, _graph, problem) {
    if (typeof node.mapper !== 'function') problem('mapper', 'required: a function (value, key) => newValue')
  },
  stores: () => [],
  internalTopics: () => [],
  physical: singleProcessor,
  getter(node, _graph, upstream) {
    const mapper = userFunction(node.name, node.mapper)
    const parent = upstream(node.inputs[0])
    return {
      store: parent.store,
      topics: parent.topics,
      get(bytes, key) {
        const value = parent.get(bytes, key)
        return value === null ? null : (mapper(value, key) ?? null)
      },
    }
  },
  compile(node, env) {
    const { name } = node
    const mapper = userFunction(name, node.mapper)
    const emit = env.downstream(name)
    return [
      (key, oldValue, newValue) => {
        const oldMapped = oldValue === undefined || oldValue === null ? oldValue : (mapper(oldValue, key) ?? null)
        const newMapped = newValue === null ? null : (mapper(newValue, key) ?? null)
        if (oldMapped === null && newMapped === null) return
        emit(key, oldMapped, newMapped)
      },
    ]
  },
}
