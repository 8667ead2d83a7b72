/**
 * The receipt of a deletion request, read from the audit table (as the owner or an auditor role;
 * the sink role cannot read it): the request is confirmed when a processor version has written
 * DELETION_APPLIED for every partition (each event says how many there are) and the sink left 0 rows
 * of the subject. The receipt sums the chunks the processor partitions tombstoned, and counts per
 * version table the rows of the subject the sink removed since the request — by the processor's
 * chunk tombstones or by its own subject delete, both marked in the version's tombstone table with
 * the subject hashes — and is recorded as ONE DELETION_CONFIRMED audit row (its
 * event id derives from the request id, so a second `--wait` finds it instead of adding another).
 */
import type pg from 'pg'
import { RagstreamError } from '../errors.ts'
import { deadLetterExpiryMs, type DeadLetterRetention } from '../governance/forget/dead-letter.ts'
import { receiptAuditEvent, verificationQuery, type ForgetReceipt } from '../governance/forget/receipt.ts'
import { hashSubject } from '../governance/subject.ts'
import type { SinkNames } from './config.ts'
import { versionTables } from './forget-subjects.ts'

export interface ReceiptRequest {
  readonly requestId: string
  readonly subject: string
  readonly requestedAtMs: number
  /** The processor topology (its application id), as recorded in the audit events. */
  readonly topology?: string
  /** Where the request was produced (recorded as the DELETION_CONFIRMED row's source). */
  readonly source: { readonly topic: string; readonly partition: number; readonly offset: bigint }
  readonly timeoutMs: number
  readonly pollMs?: number
  /**
   * Postgres's clock when the request was produced (`SELECT clock_timestamp()` before producing):
   * rows of the subject removed since then are the rows the request deleted.
   */
  readonly sinceDb: Date
  /** The dead-letter topic's retention, for the expiry line. */
  readonly deadLetters?: DeadLetterRetention
}

interface AppliedRow {
  readonly topology: string
  readonly topology_version: string | null
  readonly counts: Record<string, number>
  readonly written_at: Date
}

/** Polls until the request is confirmed; throws RS_FORGET_UNCONFIRMED after `timeoutMs`. */
export async function awaitForgetReceipt(
  client: pg.Client,
  names: SinkNames,
  request: ReceiptRequest,
): Promise<{ receipt: ForgetReceipt; recorded: boolean }> {
  const deadline = Date.now() + request.timeoutMs
  const subjectHash = hashSubject(request.subject)
  const recorded = await recordedReceipt(client, names, request, subjectHash)
  if (recorded !== undefined) return { receipt: recorded, recorded: false }
  for (;;) {
    const applied = await client.query<AppliedRow>(
      `SELECT topology, topology_version, counts, written_at FROM ${names.auditTable}
       WHERE request_id = $1 AND kind = 'DELETION_APPLIED' AND subject_hash = $2 AND ($3::text IS NULL OR topology = $3)`,
      [request.requestId, subjectHash, request.topology ?? null],
    )
    const complete = completeVersion(applied.rows)
    if (complete !== undefined) {
      const rows = applied.rows.filter(
        (r) => r.topology === complete.topology && r.topology_version === complete.topology_version,
      )
      const remaining = rows.reduce((n, r) => Math.max(n, Number(r.counts.remaining ?? 0)), 0)
      if (remaining === 0) return record(client, names, request, subjectHash, rows)
    }
    if (Date.now() >= deadline) {
      throw new RagstreamError(
        'RS_FORGET_UNCONFIRMED',
        `deletion request ${request.requestId} was not confirmed within ${Math.round(request.timeoutMs / 1000)} s (${applied.rowCount} partition confirmations so far); is the topology's processor running, and the sink?`,
        {
          context: { field: 'timeout' },
        },
      )
    }
    await new Promise((resolve) => setTimeout(resolve, request.pollMs ?? 100))
  }
}

/** The first (topology, version) that has a DELETION_APPLIED from each of its partitions. */
function completeVersion(rows: readonly AppliedRow[]): AppliedRow | undefined {
  const groups = new Map<string, { row: AppliedRow; partitions: Set<number>; expected: number }>()
  for (const row of rows) {
    const id = `${row.topology}\u0000${row.topology_version ?? ''}`
    let group = groups.get(id)
    if (group === undefined)
      groups.set(id, (group = { row, partitions: new Set(), expected: Number(row.counts.partitions ?? Infinity) }))
    group.partitions.add(Number(row.counts.partition))
  }
  for (const group of groups.values()) if (group.partitions.size >= group.expected) return group.row
  return undefined
}

async function record(
  client: pg.Client,
  names: SinkNames,
  request: ReceiptRequest,
  subjectHash: string,
  rows: readonly AppliedRow[],
): Promise<{ receipt: ForgetReceipt; recorded: boolean }> {
  const rowsDeleted: Record<string, number> = {}
  let chunks = 0
  let confirmedAtMs = 0
  for (const row of rows) {
    chunks += Number(row.counts.chunks_tombstoned ?? 0)
    confirmedAtMs = Math.max(confirmedAtMs, row.written_at.getTime())
  }
  for (const table of await versionTables(client, names)) {
    const removed = await client.query<{ n: number; last: Date | null }>(
      `SELECT count(*)::int AS n, max(removed_at) AS last FROM ${table.tombstoneTable} WHERE subject_hashes @> ARRAY[$1] AND removed_at >= $2`,
      [subjectHash, request.sinceDb],
    )
    rowsDeleted[table.label] = removed.rows[0].n
    if (removed.rows[0].last !== null) confirmedAtMs = Math.max(confirmedAtMs, removed.rows[0].last.getTime())
  }
  const tables = Object.keys(rowsDeleted)
  const receipt: ForgetReceipt = {
    requestId: request.requestId,
    subjectHash,
    topology: rows[0].topology,
    chunksTombstoned: chunks,
    rowsDeleted,
    requestedAtMs: request.requestedAtMs,
    confirmedAtMs,
    verification: verificationQuery(tables.length > 0 ? tables : [`${names.schema}.${names.chunkTableName}`]),
    remaining: 0,
    ...(request.deadLetters === undefined
      ? {}
      : { deadLettersExpireByMs: deadLetterExpiryMs(request.requestedAtMs, request.deadLetters) }),
  }
  const confirmed = receiptAuditEvent(receipt, rows[0].topology_version)
  // The request time rides along in the counts (not part of the event id), so a later `--wait` prints the same receipt.
  const event = { ...confirmed, counts: { ...confirmed.counts, requested_at_ms: request.requestedAtMs } }
  const inserted = await client.query(
    `INSERT INTO ${names.auditTable} (event_id, kind, topology, topology_version, request_id, subject_hash, entity_key_hash, reason, counts, at,
                                      source_topic, source_partition, source_offset)
     VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7::jsonb, to_timestamp($8 / 1000.0), $9, $10, $11)
     ON CONFLICT (event_id) DO NOTHING`,
    [
      event.event_id,
      event.kind,
      event.topology,
      event.topology_version,
      event.request_id,
      event.subject_hash,
      JSON.stringify(event.counts),
      event.at_ms,
      request.source.topic,
      request.source.partition,
      request.source.offset.toString(),
    ],
  )
  return { receipt, recorded: (inserted.rowCount ?? 0) === 1 }
}

/** The receipt already recorded for this request (a second `--wait`), rebuilt from its DELETION_CONFIRMED row. */
async function recordedReceipt(
  client: pg.Client,
  names: SinkNames,
  request: ReceiptRequest,
  subjectHash: string,
): Promise<ForgetReceipt | undefined> {
  const found = await client.query<{ topology: string; counts: Record<string, number>; at: Date }>(
    `SELECT topology, counts, at FROM ${names.auditTable} WHERE request_id = $1 AND kind = 'DELETION_CONFIRMED' AND subject_hash = $2`,
    [request.requestId, subjectHash],
  )
  if (found.rowCount === 0) return undefined
  const { topology, counts, at } = found.rows[0]
  const rowsDeleted: Record<string, number> = {}
  for (const [key, n] of Object.entries(counts))
    if (key.startsWith('rows_deleted:')) rowsDeleted[key.slice('rows_deleted:'.length)] = Number(n)
  const requestedAtMs = Number(counts.requested_at_ms ?? request.requestedAtMs)
  return {
    requestId: request.requestId,
    subjectHash,
    topology,
    chunksTombstoned: Number(counts.chunks_tombstoned ?? 0),
    rowsDeleted,
    requestedAtMs,
    confirmedAtMs: at.getTime(),
    verification: verificationQuery(
      Object.keys(rowsDeleted).length > 0 ? Object.keys(rowsDeleted) : [`${names.schema}.${names.chunkTableName}`],
    ),
    remaining: Number(counts.remaining ?? 0),
    ...(request.deadLetters === undefined
      ? {}
      : { deadLettersExpireByMs: deadLetterExpiryMs(requestedAtMs, request.deadLetters) }),
  }
}
