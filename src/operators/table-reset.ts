/**
 * Table resets of a CDC table source: a `TRUNCATE` (Debezium `op=t`) and a completed blocking snapshot
 * remove every row of the table that changed before them, on every partition (design point 1: the
 * index converges to the source table).
 *
 * Why a reset travels through an internal topic (`<app>-<table>-reset-repartition`, partitioned like
 * the table): the truncate arrives once, on one partition, while the table's rows live on all of them;
 * and deleting a row is a change downstream operators must prefetch their own state for, by the row's
 * key, which is only known once the table's store partition has been listed. So a reset takes two hops:
 *
 *   1. the task that reads the truncate sends a *reset* record (no key) to every partition of the
 *      reset topic; a completed snapshot sends one to its own partition;
 *   2. each task, on its reset record, lists its store partition (WHOLE_PARTITION, one round trip)
 *      and sends a *row delete* record, keyed by the row, to its own partition for every row changed
 *      before the reset point;
 *   3. each row delete is a change like any other, prefetched by its key: the row is deleted (and the
 *      delete goes downstream: chunks tombstoned) if it still changed before the reset point, and
 *      counted in the partition's state ({@link CdcTableState.removed});
 *   4. after its row deletes, step 2 sends a *done* record to its own partition. A task writes the row
 *      deletes and the done record of one reset in one go, so on its partition of the reset topic they
 *      follow each other with no other reset's deletes between: the done record reads the count and
 *      reports the reset — an audit event (TRUNCATED, or SNAPSHOT_RESET when rows went) to the
 *      topology's audit topics (src/operators/audit-outputs.ts) and `ragstream_table_resets_total`.
 *      The count is of rows actually deleted: a row changed again after the reset, or one an earlier
 *      reset's deletes already removed, is not counted twice.
 *
 * "Changed before" is read off the row's lineage (`_source`, written by cdcTableDecoder):
 *   - a truncate compares source positions (Postgres LSNs). LSNs of concurrent transactions interleave,
 *     but not around a TRUNCATE: it holds an ACCESS EXCLUSIVE lock, so every change of the table is
 *     either committed before it (smaller LSN) or written after it (larger LSN). Without positions the
 *     source times are compared; a row without lineage counts as changed before.
 *   - a snapshot compares offsets on the row's own partition: Debezium writes a blocking snapshot of a
 *     table (initial, `always`, ad hoc blocking) as one run of reads with no change of that table in
 *     between, so a row whose last change is older than the run's first read, and which the run did
 *     not read again, no longer exists. A row without lineage is kept (nothing says it is older).
 *     Incremental snapshots interleave with streaming and are never a reset.
 * The reset is also remembered per partition (the table's reserved state key), so a change older than
 * a truncate that reaches a partition after the truncate's reset (a lagging partition) is dropped.
 *
 * Record shapes on the reset topic (JSON values):
 *   reset       key null       {"reset": ResetPoint, "table": "schema.table" | null}
 *   row delete  key = row key  {"delete": ResetPoint}
 *   done        key null       {"done": ResetPoint, "table": "schema.table" | null}
 */
import { LINEAGE_FIELD } from '../cdc/table-decoder.ts'
import { auditEvent, type AuditEventValue } from '../governance/audit.ts'
import { decodeJson, encodeJson } from '../topology/json.ts'

/** The point before which a reset removes rows. */
export type ResetPoint =
  | { readonly kind: 'truncate'; readonly position: string | null; readonly timestampMs: number }
  | {
      readonly kind: 'snapshot'
      readonly partition: number
      readonly before: string
      /** Source time of the change that completed the snapshot (absent on resets written before it was kept). */
      readonly timestampMs?: number
    }

/** What the table remembers per partition under {@link CDC_STATE_KEY}. */
export interface CdcTableState {
  /** The latest truncate applied on this partition: older changes arriving later are dropped. */
  readonly truncated?: Extract<ResetPoint, { kind: 'truncate' }>
  /** The offset of the first read of the snapshot in progress on this partition. */
  readonly snapshotFrom?: string
  /** Rows the reset being applied on this partition deleted in earlier batches: its done record reports and clears them. */
  readonly removed?: number
}

/**
 * The table store's reserved key for {@link CdcTableState}. Starts with U+0000, which no Debezium key
 * holds (PostgreSQL text cannot contain it), so it never meets a row's key.
 */
export const CDC_STATE_KEY = '\u0000cdc-table'

export type ResetRecord =
  | { readonly reset: ResetPoint; readonly table: string | null }
  | { readonly delete: ResetPoint }
  | { readonly done: ResetPoint; readonly table: string | null }

export function encodeReset(record: ResetRecord): Buffer {
  return encodeJson(record)
}

export function decodeReset(bytes: Buffer | null): ResetRecord {
  if (bytes === null) throw new Error('a reset record needs a value')
  return decodeJson(bytes) as ResetRecord
}

export function readCdcState(bytes: Buffer | undefined): CdcTableState {
  return bytes === undefined ? {} : (decodeJson(bytes) as CdcTableState)
}

const DECIMAL = /^\d+$/

/**
 * True when the row's last change (its lineage) is before the point, false when at or after it,
 * undefined when the row carries no lineage to tell.
 */
export function changedBefore(row: unknown, point: ResetPoint): boolean | undefined {
  const lineage = (row as Record<string, unknown> | null)?.[LINEAGE_FIELD] as
    { position?: unknown; timestampMs?: unknown; offset?: unknown; partition?: unknown } | undefined
  if (lineage === null || typeof lineage !== 'object') return undefined
  if (point.kind === 'snapshot') {
    if (typeof lineage.offset !== 'string' || !DECIMAL.test(lineage.offset)) return undefined
    if (lineage.partition !== point.partition) return undefined
    return BigInt(lineage.offset) < BigInt(point.before)
  }
  const position = lineage.position
  if (typeof position === 'string' && DECIMAL.test(position) && point.position !== null && DECIMAL.test(point.position))
    return BigInt(position) < BigInt(point.position)
  if (typeof lineage.timestampMs === 'number') return lineage.timestampMs < point.timestampMs
  return undefined
}

/** The later of two truncates (by position when both have one, else by time). */
export function laterTruncate(
  a: Extract<ResetPoint, { kind: 'truncate' }> | undefined,
  b: Extract<ResetPoint, { kind: 'truncate' }>,
): Extract<ResetPoint, { kind: 'truncate' }> {
  if (a === undefined) return b
  if (a.position !== null && b.position !== null && DECIMAL.test(a.position) && DECIMAL.test(b.position))
    return BigInt(b.position) > BigInt(a.position) ? b : a
  return b.timestampMs >= a.timestampMs ? b : a
}

/** Whether a reset removes a listed row: rows without lineage go with a truncate and stay with a snapshot. */
export function resetRemoves(row: unknown, point: ResetPoint): boolean {
  return changedBefore(row, point) ?? point.kind === 'truncate'
}

export interface ResetAuditInput {
  readonly topology: string
  readonly topologyVersion: string | null
  /** The table's node name. */
  readonly table: string
  /** `schema.table` as the source named it, when it did. */
  readonly sourceTable: string | null
  readonly point: ResetPoint
  readonly partition: number
  readonly rowsRemoved: number
  /** When the reset happened at the source (the truncate's time, the completing change's time). */
  readonly atMs: number
}

/** A decimal position as a count (counts are numbers), when it is one that a number holds exactly. */
function positionCount(decimal: string | null): number | undefined {
  if (decimal === null || !DECIMAL.test(decimal)) return undefined
  const n = Number(decimal)
  return Number.isSafeInteger(n) ? n : undefined
}

/**
 * The audit event of one reset applied on one partition: TRUNCATED or SNAPSHOT_RESET, counts only.
 * `reason` names the table (`<node>`, or `<node> (<schema.table>)` when the source named it); counts
 * hold `rows_removed`, `partition` and the source position (`source_position`: the truncate's LSN) or
 * the snapshot's first read (`snapshot_offset`). The event id is a hash of the table, the partition
 * and the reset point, so applying the same reset again (a batch re-processed after an abort, a
 * replay) writes the same event.
 */
export function resetAudit(input: ResetAuditInput): AuditEventValue {
  const { point, partition, table } = input
  const counts: Record<string, number> = { rows_removed: input.rowsRemoved, partition }
  const position = positionCount(point.kind === 'truncate' ? point.position : point.before)
  if (position !== undefined) counts[point.kind === 'truncate' ? 'source_position' : 'snapshot_offset'] = position
  return auditEvent({
    kind: point.kind === 'truncate' ? 'TRUNCATED' : 'SNAPSHOT_RESET',
    topology: input.topology,
    topologyVersion: input.topologyVersion,
    reason: input.sourceTable === null ? table : `${table} (${input.sourceTable})`,
    counts,
    atMs: input.atMs,
    identity:
      point.kind === 'truncate'
        ? [table, partition, point.position ?? '', point.timestampMs].join('\u0000')
        : [table, partition, point.partition, point.before].join('\u0000'),
  })
}
