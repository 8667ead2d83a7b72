/**
 * `collect`, the group owner's side: the children of a parent as an ordered, bounded list. Each child
 * is one store entry `groupedKey(parent, child key)` (its mapped value, lineage and subjects included
 * as the row carries them), and the parent's document (the list) is stored at the parent key, so a
 * join reads it like any table. A change to one child writes its entry and the document: a constant
 * number of writes however many children the parent has; the list is rebuilt from one prefix scan.
 *
 * Overflow rule: the list holds the first `limit` children by `orderBy` (ascending unless
 * `descending`; ties and the default order: child key ascending); `total` counts every child, and
 * `truncated` says whether some were left out. A child outside the list is still kept (its entry), so
 * it enters the list when one before it leaves.
 */
import type { ChangeHandler, RecordScope, TopicEntry } from '../../topology/compiled.ts'
import type { AggregateNode, CollectSpec } from '../../topology/graph.ts'
import { decodeJson, encodeJson } from '../../topology/json.ts'
import { groupPrefix, groupedKey, memberOf } from '../../state/store.ts'
import { userFunction } from '../../topology/user-code.ts'
import type { GroupChange } from './wire.ts'

/** One child in a collected document. */
export interface CollectedItem<V = unknown> {
  readonly key: string
  readonly value: V
}

/** A parent's collected children (the value of a `collect` table). */
export interface Collected<V = unknown> {
  readonly items: readonly CollectedItem<V>[]
  /** Every child of the parent, also those beyond the limit. */
  readonly total: number
  /** True when `total` > the number of items (the overflow rule dropped some from the list). */
  readonly truncated: boolean
}

export function collectProblems(spec: CollectSpec, problem: (field: string, message: string) => void): void {
  if (!Number.isInteger(spec.limit) || spec.limit < 1 || spec.limit > 10_000)
    problem('limit', 'required: an integer from 1 to 10000 (the most children a document lists)')
  if (spec.orderBy !== undefined && typeof spec.orderBy !== 'function')
    problem('orderBy', 'must be a function (value, childKey) => string | number')
}

export function collectHandler(
  node: AggregateNode,
  spec: CollectSpec,
  scope: RecordScope,
  downstream: ChangeHandler,
): TopicEntry['handle'] {
  const { name } = node
  const orderOf = userFunction(name, (value: unknown, key: string): string | number => {
    const order = spec.orderBy === undefined ? key : spec.orderBy(value, key)
    return typeof order === 'number' || typeof order === 'string' ? order : String(order)
  })
  const json = userFunction(name, encodeJson)
  const sign = spec.descending ? -1 : 1
  return (record, decoded) => {
    const parent = decoded.key
    const change = decoded.value as GroupChange
    const store = scope.stores.get(name)!
    const partition = record.partition
    const prefix = groupPrefix(parent)
    const entryKey = groupedKey(parent, change.k)
    const children = new Map<string, Buffer>()
    for (const [key, bytes] of store.scan(partition, prefix)) children.set(memberOf(prefix, key), bytes)
    const oldEntry = children.get(change.k)
    if (change.a !== undefined) {
      const bytes = json(change.a[0])
      if (oldEntry === undefined || !bytes.equals(oldEntry)) {
        scope.undo.remember(store, partition, entryKey, oldEntry)
        store.put(partition, entryKey, bytes)
      }
      children.set(change.k, bytes)
    } else if (change.s !== undefined && oldEntry !== undefined) {
      scope.undo.remember(store, partition, entryKey, oldEntry)
      store.delete(partition, entryKey)
      children.delete(change.k)
    }
    const oldDoc = store.get(partition, parent)
    const oldValue = oldDoc === undefined ? null : decodeJson(oldDoc)
    if (children.size === 0) {
      if (oldDoc === undefined) return
      scope.undo.remember(store, partition, parent, oldDoc)
      store.delete(partition, parent)
      downstream(parent, oldValue, null)
      return
    }
    const ordered = [...children].map(([key, bytes]) => {
      const value = decodeJson(bytes)
      return { key, value, order: orderOf(value, key) }
    })
    ordered.sort((x, y) => {
      if (x.order !== y.order) {
        if (typeof x.order === 'number' && typeof y.order === 'number') return sign * (x.order - y.order)
        return sign * (String(x.order) < String(y.order) ? -1 : 1)
      }
      return x.key < y.key ? -1 : x.key > y.key ? 1 : 0
    })
    const items = ordered.slice(0, spec.limit).map(({ key, value }) => ({ key, value }))
    const doc: Collected = { items, total: children.size, truncated: children.size > items.length }
    const bytes = json(doc)
    if (oldDoc !== undefined && bytes.equals(oldDoc)) return
    scope.undo.remember(store, partition, parent, oldDoc)
    store.put(partition, parent, bytes)
    downstream(parent, oldValue, doc)
  }
}
