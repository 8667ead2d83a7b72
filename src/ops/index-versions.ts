/**
 * The SQL side of blue/green re-indexing: which versions of a topology exist, which one the analyst
 * view reads, freshness of a version's table, promoting a version (the view switch is one
 * transaction: `activateVersion`) and dropping the versions no view reads any more.
 */
import type pg from 'pg'
import { ConfigError } from '../errors.ts'
import { activateVersion } from '../sink/migrations.ts'
import type { SinkConfig } from '../sink/config.ts'
import { qualified, quoteIdent } from '../sink/identifiers.ts'

export interface IndexVersion {
  readonly version: string
  readonly table: string
  readonly dims: number
  readonly active: boolean
  readonly createdAt: string
  readonly activatedAt: string | null
}

export async function listVersions(client: pg.Client, config: SinkConfig): Promise<IndexVersion[]> {
  const r = await client.query<{
    version: string
    table_name: string
    dims: number
    active: boolean
    created_at: Date
    activated_at: Date | null
  }>(
    `SELECT version, table_name, dims, active, created_at, activated_at FROM ${config.names.versionsTable} WHERE topology = $1 ORDER BY created_at`,
    [config.topology],
  )
  return r.rows.map((v) => ({
    version: v.version,
    table: v.table_name,
    dims: v.dims,
    active: v.active,
    createdAt: v.created_at.toISOString(),
    activatedAt: v.activated_at?.toISOString() ?? null,
  }))
}

export interface Freshness {
  readonly rows: number
  /** Seconds from source change to visible in Postgres (visible_at − source_ts), over the rows written in the window. */
  readonly p50: number | null
  readonly p99: number | null
  readonly windowRows: number
  readonly lastVisibleAt: string | null
  /**
   * The same split in two at the change's append to its source topic (`source_appended_at`), over the
   * window's rows that carry it (`splitRows`; rows of older processors do not): capture is
   * source_appended_at − source_ts (the source's commit to its topic: Debezium's share), ragstream
   * visible_at − source_appended_at. Null when no row of the window carries it.
   */
  readonly splitRows: number
  readonly capture: { readonly p50: number; readonly p99: number } | null
  readonly ragstream: { readonly p50: number; readonly p99: number } | null
}

/**
 * Freshness of one version's table. `windowSeconds` limits the percentiles to recently written rows
 * (live freshness); without it they cover every row. `changedSince` (epoch ms) limits them instead to
 * rows whose change happened at its source after it (`source_ts`: the demo's live changes, not the
 * backfill). Read as a role that sees every row (the sink role).
 */
export async function tableFreshness(
  client: pg.Client,
  table: string,
  windowSeconds?: number,
  changedSince?: number,
): Promise<Freshness> {
  const window =
    changedSince !== undefined
      ? `WHERE source_ts > to_timestamp($1 / 1000.0)`
      : windowSeconds === undefined
        ? ''
        : `WHERE visible_at > clock_timestamp() - make_interval(secs => $1)`
  const params = changedSince !== undefined ? [changedSince] : windowSeconds === undefined ? [] : [windowSeconds]
  const pct = (p: number, from: string, to: string): string =>
    `percentile_cont(${p}) WITHIN GROUP (ORDER BY extract(epoch FROM ${to} - ${from}))`
  const [total, recent] = await Promise.all([
    client.query<{ rows: string; last: Date | null }>(`SELECT count(*) AS rows, max(visible_at) AS last FROM ${table}`),
    client.query<{
      n: string
      p50: number | null
      p99: number | null
      split: string
      capture_p50: number | null
      capture_p99: number | null
      ragstream_p50: number | null
      ragstream_p99: number | null
    }>(
      `SELECT count(*) AS n,
              ${pct(0.5, 'source_ts', 'visible_at')} AS p50,
              ${pct(0.99, 'source_ts', 'visible_at')} AS p99,
              count(source_appended_at) AS split,
              ${pct(0.5, 'source_ts', 'source_appended_at')} AS capture_p50,
              ${pct(0.99, 'source_ts', 'source_appended_at')} AS capture_p99,
              ${pct(0.5, 'source_appended_at', 'visible_at')} AS ragstream_p50,
              ${pct(0.99, 'source_appended_at', 'visible_at')} AS ragstream_p99
       FROM ${table} ${window}`,
      params,
    ),
  ])
  const r = recent.rows[0]
  const pair = (p50: number | null, p99: number | null) =>
    p50 === null || p99 === null ? null : { p50: Number(p50), p99: Number(p99) }
  return {
    rows: Number(total.rows[0].rows),
    p50: r.p50 === null ? null : Number(r.p50),
    p99: r.p99 === null ? null : Number(r.p99),
    windowRows: Number(r.n),
    lastVisibleAt: total.rows[0].last?.toISOString() ?? null,
    splitRows: Number(r.split),
    capture: pair(r.capture_p50, r.capture_p99),
    ragstream: pair(r.ragstream_p50, r.ragstream_p99),
  }
}

export interface PromoteResult {
  readonly active: string
  readonly previous: string | null
  readonly dropped: readonly string[]
}

/**
 * Points the topology's view at `config.version` (one transaction), and with `dropOld` drops every
 * other version's chunk and tombstone tables and registry row (a second transaction: the switch never
 * waits for the drop). Run as the owner role.
 */
export async function promoteVersion(
  owner: pg.Client,
  config: SinkConfig,
  options: { dropOld?: boolean } = {},
): Promise<PromoteResult> {
  const before = await listVersions(owner, config)
  if (!before.some((v) => v.version === config.version)) {
    throw new ConfigError(
      [
        {
          path: '<version>',
          message: `${config.topology}@${config.version} does not exist (versions: ${before.map((v) => v.version).join(', ') || 'none'}); build it with ragstream replay`,
        },
      ],
      'promote',
    )
  }
  const previous = before.find((v) => v.active)?.version ?? null
  await activateVersion(owner, config)
  const dropped = options.dropOld ? await dropInactiveVersions(owner, config) : []
  return { active: config.version, previous, dropped }
}

/** Drops every version of the topology except the active one. Refuses to drop what the view reads. */
export async function dropInactiveVersions(
  owner: pg.Client,
  config: SinkConfig,
  only: (version: string) => boolean = () => true,
): Promise<string[]> {
  const n = config.names
  await owner.query('BEGIN')
  try {
    await owner.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ragstream.migrate.${n.schema}`])
    const old = await owner.query<{ version: string; table_name: string }>(
      `SELECT version, table_name FROM ${n.versionsTable} WHERE topology = $1 AND NOT active`,
      [config.topology],
    )
    old.rows = old.rows.filter((r) => only(r.version))
    for (const { version, table_name } of old.rows) {
      // The tombstone table's name follows the chunk table's (resolveSinkConfig derives both).
      const tombstones = table_name.replace(/^chunks_/, 'tombstones_')
      await owner.query(
        `DROP TABLE IF EXISTS ${qualified(n.schema, table_name)}, ${quoteIdent(n.schema)}.${quoteIdent(tombstones)}`,
      )
      await owner.query(`DELETE FROM ${n.versionsTable} WHERE topology = $1 AND version = $2`, [
        config.topology,
        version,
      ])
    }
    await owner.query('COMMIT')
    return old.rows.map((r) => r.version)
  } catch (error) {
    await owner.query('ROLLBACK').catch(() => {})
    throw error
  }
}
