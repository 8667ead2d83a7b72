/**
 * The receipt of a deletion request, read from the audit table (as the owner or an auditor role;
 * the sink role cannot read it): the request is confirmed when a processor version has written
 * DELETION_APPLIED for every partition (each event says how many there are) and the sink left 0 rows
 * of the subject. The receipt sums what those events counted — chunks tombstoned by the processor,
 * rows deleted per table by the sink — and is recorded as ONE DELETION_CONFIRMED audit row (its
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
export async function awaitForgetReceipt(client: pg.Client, names: SinkNames, request: ReceiptRequest): Promise<{ receipt: ForgetReceipt; recorded: boolean }> {
  const deadline = Date.now() + request.timeoutMs
  const subjectHash = hashSubject(request.subject)
  for (;;) {
    const applied = await client.query<AppliedRow>(
      `SELECT topology, topology_version, counts, written_at FROM ${names.auditTable}
       WHERE request_id = $1 AND kind = 'DELETION_APPLIED' AND subject_hash = $2 AND ($3::text IS NULL OR topology = $3)`,
      [request.requestId, subjectHash, request.topology ?? null],
    )
    const complete = completeVersion(applied.rows)
    if (complete !== undefined) {
      const rows = applied.rows.filter((r) => r.topology === complete.topology && r.topology_version === complete.topology_version)
      const remaining = rows.reduce((n, r) => Math.max(n, Number(r.counts.remaining ?? 0)), 0)
      if (remaining === 0) return record(client, names, request, subjectHash, rows)
    }
    if (Date.now() >= deadline) {
      throw new RagstreamError('RS_FORGET_UNCONFIRMED', `deletion request ${request.requestId} was not confirmed within ${Math.round(request.timeoutMs / 1000)} s (${applied.rowCount} partition confirmations so far); is the topology's processor running, and the sink?`, {
        context: { field: 'timeout' },
      })
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
    if (group === undefined) groups.set(id, (group = { row, partitions: new Set(), expected: Number(row.counts.partitions ?? Infinity) }))
    group.partitions.add(Number(row.counts.partition))
  }
  for (const group of groups.values()) if (group.partitions.size >= group.expected) return group.row
  return undefined
}

async function record(client: pg.Client, names: SinkNames, request: ReceiptRequest, subjectHash: string, rows: readonly AppliedRow[]): Promise<{ receipt: ForgetReceipt; recorded: boolean }> {
  const rowsDeleted: Record<string, number> = {}
  for (const table of await versionTables(client, names)) rowsDeleted[table.label] = 0
  let chunks = 0
  let confirmedAtMs = 0
  for (const row of rows) {
    chunks += Number(row.counts.chunks_tombstoned ?? 0)
    confirmedAtMs = Math.max(confirmedAtMs, row.written_at.getTime())
    for (const [key, n] of Object.entries(row.counts)) {
      if (key.startsWith('rows_deleted:')) rowsDeleted[key.slice('rows_deleted:'.length)] = (rowsDeleted[key.slice('rows_deleted:'.length)] ?? 0) + Number(n)
    }
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
    ...(request.deadLetters === undefined ? {} : { deadLettersExpireByMs: deadLetterExpiryMs(request.requestedAtMs, request.deadLetters) }),
  }
  const event = receiptAuditEvent(receipt, rows[0].topology_version)
  const inserted = await client.query(
    `INSERT INTO ${names.auditTable} (event_id, kind, topology, topology_version, request_id, subject_hash, entity_key_hash, reason, counts, at,
                                      source_topic, source_partition, source_offset)
     VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7::jsonb, to_timestamp($8 / 1000.0), $9, $10, $11)
     ON CONFLICT (event_id) DO NOTHING`,
    [event.event_id, event.kind, event.topology, event.topology_version, event.request_id, event.subject_hash, JSON.stringify(event.counts), event.at_ms, request.source.topic, request.source.partition, request.source.offset.toString()],
  )
  return { receipt, recorded: (inserted.rowCount ?? 0) === 1 }
}
