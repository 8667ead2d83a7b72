/**
 * `collect`, the group owner's side: the children of a parent as an ordered, bounded list, stored in
 * the store `<name>` (the parent key's partition) as
 *
 *   <parent>                                   the document: {"items": [{key, value, subjects?}], "total", "truncated", "subjects"?}
 *   groupedKey(parent, order part + child key) one entry per child: {"v": mapped value, "j"?: [subject, …]}
 *
 * The order part encodes `orderBy(value, child key)` so that key order is list order (see
 * `orderPart`), so the store keeps the children sorted and a change never sorts them: it deletes
 * the child's old entry (its key computed from the old value the change carries), writes the new one,
 * and edits the stored list in place — a constant number of store writes and O(limit) work however
 * many children the parent has. Only when a listed child leaves a list that holds fewer than all the
 * children is the list refilled from one ordered prefix scan, decoding just the first `limit` entries.
 * `orderBy` must therefore be a pure function of the child's value and key (a changed `orderBy`
 * needs a replay from earliest).
 *
 * Overflow rule: the list holds the first `limit` children by `orderBy` (ascending unless
 * `descending`; ties and the default order: child key ascending; numbers before strings, reversed
 * when descending); `total` counts every child, and `truncated` says whether some were left out. A
 * child outside the list is still kept (its entry), so it enters the list when one before it leaves.
 */
import type { ChangeHandler, RecordScope, TopicEntry } from '../../topology/compiled.ts'
import type { AggregateNode, CollectSpec, DecodedRecord } from '../../topology/graph.ts'
import { decodeJson, encodeJson } from '../../topology/json.ts'
import { groupPrefix, groupedKey, memberOf } from '../../state/store.ts'
import { userFunction } from '../../topology/user-code.ts'
import type { GroupChange } from './wire.ts'

/** One child in a collected document. */
export interface CollectedItem<V = unknown> {
  readonly key: string
  readonly value: V
  /** The child's data subjects, when the grouped table names its rows' subjects (`subject`). */
  readonly subjects?: readonly string[]
}

/** A parent's collected children (the value of a `collect` table). */
export interface Collected<V = unknown> {
  readonly items: readonly CollectedItem<V>[]
  /** Every child of the parent, also those beyond the limit. */
  readonly total: number
  /** True when `total` > the number of items (the overflow rule dropped some from the list). */
  readonly truncated: boolean
  /**
   * The data subjects of the listed children (sorted, each once), when the grouped table names its
   * rows' subjects. They are the document's parts, not its owners: forgetting one takes its children
   * out of the list (forgetting per contribution) and the document stays, so a policy should not name
   * them as the document's `subjects` (forgetting those removes the whole document).
   */
  readonly subjects?: readonly string[]
}

export function collectProblems(spec: CollectSpec, problem: (field: string, message: string) => void): void {
  if (!Number.isInteger(spec.limit) || spec.limit < 1 || spec.limit > 10_000)
    problem('limit', 'required: an integer from 1 to 10000 (the most children a document lists)')
  if (spec.orderBy !== undefined && typeof spec.orderBy !== 'function')
    problem('orderBy', 'must be a function (value, childKey) => string | number')
}

/*
 * Order part of a child's entry key: JavaScript string order (and Redis's byte order: it is ASCII)
 * equals the list's order.
 *   number n → '1' + 16 hex digits of n's IEEE-754 bits (sign bit flipped, all bits when negative)
 *   string s → '2' + the hex of s's UTF-8 bytes (UTF-8 byte order is code point order)
 * then a terminator that sorts before every hex digit ('!'), so a shorter string sorts first.
 * Descending: every hex digit d as 15 − d and the terminator '~' (after every digit): the exact reverse.
 */
const HEX_REVERSED: Record<string, string> = Object.fromEntries(
  [...'0123456789abcdef'].map((d, i) => [d, '0123456789abcdef'[15 - i]]),
)
const float = new DataView(new ArrayBuffer(8))

export function orderPart(order: string | number, descending: boolean): string {
  let ascending: string
  if (typeof order === 'number') {
    float.setFloat64(0, order === 0 ? 0 : order) // -0 sorts as 0
    const high = float.getUint32(0)
    const low = float.getUint32(4)
    const negative = high >>> 31 === 1
    const h = negative ? ~high >>> 0 : (high | 0x80000000) >>> 0
    const l = negative ? ~low >>> 0 : low
    ascending = '1' + h.toString(16).padStart(8, '0') + l.toString(16).padStart(8, '0')
  } else ascending = '2' + Buffer.from(order, 'utf8').toString('hex')
  if (!descending) return ascending + '!'
  let reversed = ''
  for (const d of ascending) reversed += HEX_REVERSED[d]
  return reversed + '~'
}

/** The child key of an entry's member part (order part, terminator, child key). */
function childOf(member: string, descending: boolean): string {
  return member.slice(member.indexOf(descending ? '~' : '!') + 1)
}

interface ChildEntry {
  readonly v: unknown
  readonly j?: readonly string[]
}

export function collectHandler(
  node: AggregateNode,
  spec: CollectSpec,
  scope: RecordScope,
  downstream: ChangeHandler,
  withSubjects: boolean,
): { handle: TopicEntry['handle']; entryKeys: (decoded: DecodedRecord) => [string | null, string | null] } {
  const { name } = node
  const { descending, limit } = spec
  const orderOf = userFunction(name, (value: unknown, key: string): string => {
    const order = spec.orderBy === undefined ? key : spec.orderBy(value, key)
    return orderPart(typeof order === 'number' || typeof order === 'string' ? order : String(order), descending)
  })
  const json = userFunction(name, encodeJson)
  const member = (item: CollectedItem): string => orderOf(item.value, item.key) + item.key
  const itemOf = (key: string, entry: ChildEntry): CollectedItem =>
    withSubjects ? { key, value: entry.v, subjects: entry.j ?? [] } : { key, value: entry.v }

  /** The first `limit` children, from one ordered scan (only they are decoded). */
  const refill = (partition: number, parent: string): CollectedItem[] => {
    const prefix = groupPrefix(parent)
    const entries = scope.stores.get(name)!.scan(partition, prefix)
    const items: CollectedItem[] = []
    for (let i = 0; i < entries.length && i < limit; i++)
      items.push(itemOf(childOf(memberOf(prefix, entries[i][0]), descending), decodeJson(entries[i][1]) as ChildEntry))
    return items
  }

  const handle: TopicEntry['handle'] = (record, decoded) => {
    const parent = decoded.key
    const change = decoded.value as GroupChange
    const child = change.k
    const store = scope.stores.get(name)!
    const partition = record.partition
    const write = (key: string, before: Buffer | undefined, after: Buffer | undefined): void => {
      scope.undo.remember(store, partition, key, before)
      if (after === undefined) store.delete(partition, key)
      else store.put(partition, key, after)
    }
    const oldDoc = store.get(partition, parent)
    const old = oldDoc === undefined ? null : (decodeJson(oldDoc) as Collected)
    let items: CollectedItem[] = old === null ? [] : [...old.items]
    let total = old?.total ?? 0
    const complete = total === items.length // every child is listed
    let refillNeeded = false

    const oldKey = change.s === undefined ? undefined : groupedKey(parent, orderOf(change.s[0], child) + child)
    const newKey = change.a === undefined ? undefined : groupedKey(parent, orderOf(change.a[0], child) + child)
    const entry =
      change.a === undefined ? undefined : { v: change.a[0], ...(change.j === undefined ? {} : { j: change.j }) }
    const listedAt = items.findIndex((item) => item.key === child)
    if (oldKey !== undefined) {
      const oldEntry = store.get(partition, oldKey)
      if (oldEntry !== undefined && oldKey !== newKey) {
        write(oldKey, oldEntry, undefined)
        total--
      }
      // A subtraction reaching no entry (its addition was dead-lettered) changes nothing.
      if (oldEntry !== undefined && listedAt >= 0 && oldKey !== newKey) {
        items.splice(listedAt, 1)
        if (!complete) refillNeeded = true
      }
    }
    if (newKey !== undefined && entry !== undefined) {
      const bytes = json(entry)
      const existing = store.get(partition, newKey)
      if (existing === undefined || !existing.equals(bytes)) write(newKey, existing, bytes)
      if (existing === undefined) total++
      const item = itemOf(child, entry)
      const at = items.findIndex((i) => i.key === child)
      if (at >= 0)
        items[at] = item // same place in the order: edited in place
      else if (!refillNeeded) {
        const m = orderOf(entry.v, child) + child
        let i = items.length
        while (i > 0 && member(items[i - 1]) > m) i--
        // A child past the last listed one enters only when every child was listed.
        if (i < items.length || complete) items.splice(i, 0, item)
        if (items.length > limit) items.length = limit
      }
    }
    if (refillNeeded) items = refill(partition, parent)

    if (total === 0) {
      if (oldDoc === undefined) return
      write(parent, oldDoc, undefined)
      downstream(parent, old, null)
      return
    }
    const doc: Collected = {
      items,
      total,
      truncated: total > items.length,
      ...(withSubjects ? { subjects: [...new Set(items.flatMap((i) => i.subjects ?? []))].sort() } : {}),
    }
    const bytes = json(doc)
    if (oldDoc !== undefined && bytes.equals(oldDoc)) return
    write(parent, oldDoc, bytes)
    downstream(parent, old, doc)
  }

  /** The entries a change reads: the child's old and new entry (null when it has none, or orderBy throws: the handler then fails it). */
  const entryKeys = (decoded: DecodedRecord): [string | null, string | null] => {
    const change = decoded.value as GroupChange
    const keyOf = (value: readonly [unknown] | undefined): string | null => {
      if (value === undefined) return null
      try {
        return groupedKey(decoded.key, orderOf(value[0], change.k) + change.k)
      } catch {
        return null
      }
    }
    return [keyOf(change.s), keyOf(change.a)]
  }
  return { handle, entryKeys }
}
