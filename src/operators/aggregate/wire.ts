/**
 * The aggregate's bytes: what travels on its group-by repartition topic and what its store holds.
 *
 * Group-by record: key = group key (UTF-8), partition = partitionForString(group key), value = JSON
 *   {"k": child key, "s": [old mapped value]?, "a": [new mapped value]?, "j": [subject, …]?}
 * `s` (subtract) and `a` (add) are each wrapped in a one-element array so a null mapped value
 * survives; a child whose group stays the same sends both in one record (subtract, then add). `j`
 * (collect only, when the grouped table names its rows' subjects) is the added child's data subjects.
 *
 * Store `<aggregate>`, one value per group key: JSON {"n": contributing children, "v": aggregate}.
 * The count is what lets a group whose last child left disappear (a tombstone downstream) instead of
 * lingering as an empty aggregate.
 */
import { RagstreamError } from '../../errors.ts'
import { decodeJson, encodeJson } from '../../topology/json.ts'

export interface GroupChange {
  /** The child's key (for dead letters and lineage). */
  readonly k: string
  readonly s?: readonly [unknown]
  readonly a?: readonly [unknown]
  /** The added child's data subjects (collect over a table that names its rows' subjects). */
  readonly j?: readonly string[]
}

export interface GroupState {
  readonly n: number
  readonly v: unknown
}

export function groupChangeBytes(change: GroupChange): Buffer {
  return encodeJson(change)
}

export function decodeGroupChange(bytes: Buffer): GroupChange {
  const change = decodeJson(bytes) as GroupChange | null
  if (
    change === null ||
    typeof change !== 'object' ||
    typeof change.k !== 'string' ||
    (change.s !== undefined && !Array.isArray(change.s)) ||
    (change.a !== undefined && !Array.isArray(change.a)) ||
    (change.j !== undefined && !Array.isArray(change.j))
  )
    throw new RagstreamError('RS_DECODE_FAILED', 'not a group-by change ({"k", "s"?, "a"?})')
  return change
}

export function decodeGroupState(bytes: Buffer): GroupState {
  return decodeJson(bytes) as GroupState
}
