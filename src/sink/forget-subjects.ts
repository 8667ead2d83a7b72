/**
 * Forgetting, sink side. A DELETION_APPLIED audit event on the chunk topic (one per processor
 * partition, carrying the subject's sha256) makes the sink delete, in the same transaction as the
 * audit row, every row of that subject in EVERY version table of the topology — also versions no
 * processor writes any more — and mark each deleted row in that version's tombstone table (so an
 * older upsert replayed later cannot re-create it). The rows deleted per table are added to the
 * audit row's counts (`rows_deleted:<schema>.<table>`, and `remaining`: the subject's rows left in
 * every version table after the deletes, counted by the sink role that RLS lets see every row); the
 * processor's own tombstones that follow find those rows gone.
 *
 * Rows hold subjects, events only their hashes, so the match hashes each row's subjects in SQL:
 * a scan of the version table per batch that carries a request — requests are rare, tables are not
 * huge per topology version, and no subject is ever sent to Postgres.
 */
import type pg from 'pg'
import type { AuditRow } from './chunk-codec.ts'
import type { SinkNames } from './config.ts'
import { derivedIdentifier, qualified } from './identifiers.ts'

export interface VersionTable {
  readonly version: string
  /** `<schema>.<table>`, unquoted: the label in counts and receipts. */
  readonly label: string
  readonly chunkTable: string
  readonly tombstoneTable: string
}

/** Every version table of the sink's topology, as registered in `topology_versions`. */
export async function versionTables(client: pg.Client, names: SinkNames): Promise<VersionTable[]> {
  const topology = names.viewName
  const rows = await client.query<{ version: string }>(
    `SELECT version FROM ${names.versionsTable} WHERE topology = $1 ORDER BY version`,
    [topology],
  )
  return rows.rows.map(({ version }) => {
    const chunk = derivedIdentifier('/sink/topology', `chunks_${topology}_${version}`)
    const tombstones = derivedIdentifier('/sink/topology', `tombstones_${topology}_${version}`)
    return {
      version,
      label: `${names.schema}.${chunk}`,
      chunkTable: qualified(names.schema, chunk),
      tombstoneTable: qualified(names.schema, tombstones),
    }
  })
}

const SUBJECT_HASHES = `ARRAY(SELECT encode(sha256(convert_to(s, 'UTF8')), 'hex') FROM unnest(c.subjects) AS s)`

function deleteSql(table: VersionTable): string {
  return `
    WITH gone AS (
      DELETE FROM ${table.chunkTable} AS c WHERE ${SUBJECT_HASHES} && $1::text[]
      RETURNING c.chunk_id, c.chunk_offset, ${SUBJECT_HASHES} AS hashes),
    marked AS (
      INSERT INTO ${table.tombstoneTable} AS m (chunk_id, chunk_offset, deleted_at, removed_at, subject_hashes)
      SELECT chunk_id, chunk_offset, clock_timestamp(), clock_timestamp(), hashes FROM gone
      ON CONFLICT (chunk_id) DO UPDATE SET chunk_offset = GREATEST(m.chunk_offset, EXCLUDED.chunk_offset),
        deleted_at = EXCLUDED.deleted_at, removed_at = EXCLUDED.removed_at, subject_hashes = EXCLUDED.subject_hashes
      RETURNING 1)
    SELECT h AS subject_hash, count(*)::int AS deleted, (SELECT count(*) FROM marked)::int AS marked
    FROM gone, unnest(gone.hashes) AS h WHERE h = ANY($1::text[]) GROUP BY h`
}

/**
 * Deletes the rows of every subject a DELETION_APPLIED event in `audits` names, in every version
 * table; returns the audits with `rows_deleted:<table>` counts added (to the first event of each
 * subject in the batch; later ones of the same subject get 0, so sums over events stay exact).
 */
export async function forgetSubjects(
  client: pg.Client,
  names: SinkNames,
  audits: readonly AuditRow[],
): Promise<readonly AuditRow[]> {
  const hashes = [
    ...new Set(audits.flatMap((a) => (a.kind === 'DELETION_APPLIED' && a.subjectHash !== null ? [a.subjectHash] : []))),
  ]
  if (hashes.length === 0) return audits
  const tables = await versionTables(client, names)
  const deleted = new Map<string, Map<string, number>>() // subject hash → table label → rows
  for (const hash of hashes) deleted.set(hash, new Map(tables.map((t) => [t.label, 0])))
  for (const table of tables) {
    const result = await client.query<{ subject_hash: string; deleted: number }>(deleteSql(table), [hashes])
    for (const row of result.rows) deleted.get(row.subject_hash)!.set(table.label, row.deleted)
  }
  // What is left of each subject after the deletes, in this transaction (0 unless rows were written by
  // a later record of this same batch, which cannot happen: upserts run before audits).
  const remaining = new Map<string, number>(hashes.map((h) => [h, 0]))
  for (const table of tables) {
    const result = await client.query<{ subject_hash: string; n: number }>(
      `SELECT h AS subject_hash, count(*)::int AS n FROM ${table.chunkTable} AS c, unnest(${SUBJECT_HASHES}) AS h WHERE h = ANY($1::text[]) GROUP BY h`,
      [hashes],
    )
    for (const row of result.rows) remaining.set(row.subject_hash, remaining.get(row.subject_hash)! + row.n)
  }
  const counted = new Set<string>()
  return audits.map((audit) => {
    if (audit.kind !== 'DELETION_APPLIED' || audit.subjectHash === null) return audit
    const first = !counted.has(audit.subjectHash)
    counted.add(audit.subjectHash)
    const counts = JSON.parse(audit.counts) as Record<string, number>
    for (const [label, n] of deleted.get(audit.subjectHash)!) counts[`rows_deleted:${label}`] = first ? n : 0
    counts.remaining = remaining.get(audit.subjectHash)!
    return { ...audit, counts: JSON.stringify(counts) }
  })
}
