/**
 * `peek`: runs an action on every change (the new value; null for a delete) and passes the change on
 * unchanged — for logging, metrics or assertions in tests. The operator that docs/architecture.md's
 * checklist walks through: stateless, one input, user code behind the boundary, so an action that
 * throws dead-letters its record and nothing of that record reaches downstream.
 */
import { type NodeKindSpec, singleProcessor } from '../topology/compiled.ts'
import type { PeekNode } from '../topology/graph.ts'
import { userFunction } from '../topology/user-code.ts'

export interface PeekOptions {
  /** Optional for this stateless node; generated (`KTABLE-PEEK-<n>`) when absent. */
  readonly name?: string
}

export function peekNode(name: string, named: boolean, input: string, action: PeekNode['action']): PeekNode {
  return Object.freeze({ kind: 'peek', name, named, inputs: Object.freeze([input]), action })
}

export const peekOperator: NodeKindSpec<PeekNode> = {
  // Stateless; a join may read through it like through a filter (it changes no value).
  facts: { stateful: false, table: 'chain' },
  validate(node, _graph, problem) {
    if (typeof node.action !== 'function') problem('action', 'required: a function (value, key) => void')
  },
  stores: () => [],
  internalTopics: () => [],
  physical: singleProcessor,
  // A join reading through a peek reads its input's values: the action is for changes, not reads.
  getter: (node, _graph, upstream) => upstream(node.inputs[0]),
  compile(node, env) {
    const action = userFunction(node.name, node.action)
    const emit = env.downstream(node.name)
    return [
      (key, oldValue, newValue) => {
        action(newValue, key)
        emit(key, oldValue, newValue)
      },
    ]
  },
}
