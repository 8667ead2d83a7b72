import { RagstreamError } from '../../errors.ts'
import { auditEvent, type AuditEventValue } from '../audit.ts'
import { jsonSafe, terminalSafe } from '../../security/terminal.ts'

/** Proof that a deletion request was applied, as `ragstream forget --wait` prints it. */
export interface ForgetReceipt {
  readonly requestId: string
  /** sha256 hex of the subject. */
  readonly subjectHash: string
  readonly topology: string
  /** Chunk tombstones produced to the chunk topic(s). */
  readonly chunksTombstoned: number
  /** Rows deleted per Postgres table (every index version), as the sink reported them. */
  readonly rowsDeleted: Readonly<Record<string, number>>
  readonly requestedAtMs: number
  /** When the sink committed the deletes and the audit row. */
  readonly confirmedAtMs: number
  readonly verification: VerificationQuery
  /** Rows the verification query returned after the deletes: 0 is the proof. */
  readonly remaining: number
  /** When every dead letter written before the request has expired (see dead-letter.ts). */
  readonly deadLettersExpireByMs?: number
}

export interface VerificationQuery {
  /** SQL with one bound parameter `$1`. */
  readonly sql: string
  /** What `$1` is: the subject itself, or its sha256 hex. */
  readonly parameter: 'subject' | 'subject_hash'
}

// Topology names may hold '-' (chunks_support-copilot_v1); every part is double-quoted, and no part may hold a quote.
const IDENTIFIER = /^[a-z_][a-z0-9_-]*$/

function quoteIdentifier(name: string): string {
  const parts = name.split('.')
  if (parts.length > 2 || parts.some((p) => !IDENTIFIER.test(p) || Buffer.byteLength(p) > 63)) {
    throw new RagstreamError(
      'RS_IDENTIFIER_INVALID',
      `identifier ${JSON.stringify(name.slice(0, 80))} is not [schema.]name of lower-case letters, digits, _ and - (at most 63 bytes each)`,
      {
        context: { field: 'verification' },
      },
    )
  }
  return parts.map((p) => `"${p}"`).join('.')
}

/**
 * The query that counts what is left of a subject in every index table: it returns 0 after a
 * successful forget. `column` is a `text[]` column of subjects (or of subject hashes).
 */
export function verificationQuery(
  tables: readonly string[],
  options: { column?: string; parameter?: 'subject' | 'subject_hash' } = {},
): VerificationQuery {
  if (tables.length === 0)
    throw new RagstreamError('RS_IDENTIFIER_INVALID', 'verification needs at least one table', {
      context: { field: 'verification' },
    })
  const column = quoteIdentifier(options.column ?? 'subjects')
  const selects = tables.map((table) => `SELECT 1 FROM ${quoteIdentifier(table)} WHERE ${column} @> ARRAY[$1]::text[]`)
  return {
    sql: `SELECT count(*) AS remaining FROM (${selects.join(' UNION ALL ')}) AS t`,
    parameter: options.parameter ?? 'subject',
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  if (ms < 120_000) return `${(ms / 1000).toFixed(3)} s`
  return `${(ms / 60_000).toFixed(1)} min`
}

/**
 * The receipt as printed by `forget --wait`. Holds ids, hashes, counts and times only.
 *
 * @example
 * ```
 * forget receipt
 *   request       4f1c…
 *   subject       sha256 9a0e…
 *   …
 * ```
 */
/** No chunk was tombstoned and no row deleted: the subject had nothing indexed. */
export function nothingFound(receipt: ForgetReceipt): boolean {
  return receipt.chunksTombstoned === 0 && Object.values(receipt.rowsDeleted).every((n) => n === 0)
}

export function formatReceipt(receipt: ForgetReceipt): string {
  const tables = Object.entries(receipt.rowsDeleted)
  const rowsTotal = tables.reduce((sum, [, n]) => sum + n, 0)
  const lines = [
    'forget receipt',
    `  request       ${receipt.requestId}`,
    `  subject       sha256 ${receipt.subjectHash}`,
    `  topology      ${receipt.topology}`,
    `  chunks        ${receipt.chunksTombstoned} tombstoned`,
    `  rows deleted  ${rowsTotal} in total`,
    ...tables.map(([table, n]) => `    ${table}  ${n}`),
    `  requested     ${iso(receipt.requestedAtMs)}`,
    `  confirmed     ${iso(receipt.confirmedAtMs)} (${duration(receipt.confirmedAtMs - receipt.requestedAtMs)} after the request)`,
  ]
  if (receipt.deadLettersExpireByMs !== undefined)
    lines.push(`  dead letters  written before the request expire by ${iso(receipt.deadLettersExpireByMs)}`)
  // A typo in the subject must not look like a successful forget.
  if (nothingFound(receipt))
    lines.push(
      '  note          nothing of this subject was found: no chunk tombstoned, no row deleted (a subject never',
      '                indexed, a typo, or one forgotten before); the request still suppresses it from now on',
    )
  lines.push(
    `  verification  ${receipt.remaining} rows remain:`,
    `    ${receipt.verification.sql};`,
    `    -- $1 = ${receipt.verification.parameter === 'subject' ? 'the subject' : 'sha256 hex of the subject'}`,
  )
  // The request id is whatever the requester chose; the table names come from the database.
  return terminalSafe(lines.join('\n'))
}

/** The receipt as JSON (`forget --wait --json`): same fields, times as ISO strings too. */
export function receiptJson(receipt: ForgetReceipt): string {
  return jsonSafe(
    JSON.stringify({
      ...receipt,
      nothingFound: nothingFound(receipt),
      requestedAt: iso(receipt.requestedAtMs),
      confirmedAt: iso(receipt.confirmedAtMs),
      ...(receipt.deadLettersExpireByMs === undefined
        ? {}
        : { deadLettersExpireBy: iso(receipt.deadLettersExpireByMs) }),
    }),
  )
}

/** The DELETION_CONFIRMED audit event of a receipt: one per request (the event id is derived from the request id). */
export function receiptAuditEvent(receipt: ForgetReceipt, topologyVersion: string | null = null): AuditEventValue {
  const counts: Record<string, number> = { chunks_tombstoned: receipt.chunksTombstoned, remaining: receipt.remaining }
  for (const [table, n] of Object.entries(receipt.rowsDeleted)) counts[`rows_deleted:${table}`] = n
  return auditEvent({
    kind: 'DELETION_CONFIRMED',
    topology: receipt.topology,
    topologyVersion,
    requestId: receipt.requestId,
    subjectHash: receipt.subjectHash,
    counts,
    atMs: receipt.confirmedAtMs,
    identity: receipt.requestId,
  })
}
