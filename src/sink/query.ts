/**
 * Nearest-neighbour search over a topology's view, as `ragstream query` runs it and as docs/sql.md
 * shows it for psql users. The vector, the filters and k are bound parameters; the only
 * identifiers are the view and distance operator from validated configuration.
 *
 * `--where` is deliberately not SQL. Each clause is `key=value`, all clauses must hold:
 *   - `entity_type`, `entity_key`, `classification`, `tenant`, `region` compare the column;
 *   - any other key (or `metadata.<key>`) is a containment test on the metadata jsonb,
 *     `metadata @> {"key": value}` (served by the GIN index); dots nest: `customer.tier=gold`;
 *   - the value is JSON when it parses as a JSON scalar (`42`, `true`, `null`, `"007"`), else a string.
 * Nothing in a clause ever becomes SQL text, so there is nothing to inject.
 */
import type pg from 'pg'
import { ConfigError, type Problem } from '../errors.ts'
import { DISTANCE_SQL, type Distance, type VectorStorage } from './config.ts'
import { terminalSafe } from '../security/terminal.ts'

export const FILTER_COLUMNS = ['entity_type', 'entity_key', 'classification', 'tenant', 'region'] as const
type FilterColumn = (typeof FILTER_COLUMNS)[number]

export interface QueryFilter {
  readonly columns: readonly { readonly column: FilterColumn; readonly value: string }[]
  readonly metadata: Readonly<Record<string, unknown>>
}

const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype'])

const KEY = /^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$/

function scalar(raw: string): unknown {
  try {
    const parsed: unknown = JSON.parse(raw)
    if (parsed === null || ['string', 'number', 'boolean'].includes(typeof parsed)) return parsed
  } catch {
    // not JSON: a plain string
  }
  return raw
}

export function parseWhere(clauses: readonly string[]): QueryFilter {
  const problems: Problem[] = []
  const columns: { column: FilterColumn; value: string }[] = []
  // Null prototypes all the way down: no key can reach Object.prototype.
  const metadata: Record<string, unknown> = Object.create(null) as Record<string, unknown>
  clauses.forEach((clause, i) => {
    const eq = clause.indexOf('=')
    const key = eq < 0 ? '' : clause.slice(0, eq).trim()
    const raw = eq < 0 ? '' : clause.slice(eq + 1)
    if (eq < 0 || !KEY.test(key)) {
      problems.push({
        path: `--where[${i}]`,
        message: `must be key=value with a key of letters, digits, _, - and dots (got ${JSON.stringify(clause)})`,
      })
      return
    }
    if ((FILTER_COLUMNS as readonly string[]).includes(key)) {
      columns.push({ column: key as FilterColumn, value: raw })
      return
    }
    const path = (key.startsWith('metadata.') ? key.slice('metadata.'.length) : key).split('.')
    // These names reach Object.prototype or a constructor when used as keys: refused, never assigned.
    const forbidden = path.find((part) => FORBIDDEN_KEYS.has(part))
    if (forbidden !== undefined) {
      problems.push({
        path: `--where[${i}]`,
        message: `key part ${JSON.stringify(forbidden)} is not allowed (got ${JSON.stringify(clause)})`,
      })
      return
    }
    let target = metadata
    for (const part of path.slice(0, -1)) {
      const next = target[part]
      if (next === undefined || next === null || typeof next !== 'object') target[part] = Object.create(null)
      target = target[part] as Record<string, unknown>
    }
    target[path[path.length - 1]] = scalar(raw)
  })
  if (problems.length > 0) throw new ConfigError(problems, 'query filter')
  return { columns, metadata }
}

export interface NearestNeighbourQuery {
  /** Quoted, schema-qualified view (or table). */
  readonly view: string
  readonly distance: Distance
  readonly vector: readonly number[]
  readonly filter: QueryFilter
  readonly k: number
  /**
   * Column type of the embedding: the query vector is cast to it (`$1::halfvec` for halfvec tables),
   * so the operator is the index's without a conversion per row. Default: looked up from the view's column.
   */
  readonly storage?: VectorStorage
}

/** The SQL and its parameters. Score: cosine similarity, negative L2 distance, or inner product. */
export function nearestNeighbourSql(q: NearestNeighbourQuery): { text: string; values: unknown[] } {
  const { operator } = DISTANCE_SQL[q.distance]
  const values: unknown[] = [`[${q.vector.join(',')}]`, q.k]
  const cast = q.storage === 'halfvec' ? 'halfvec' : 'vector'
  const where: string[] = []
  for (const { column, value } of q.filter.columns) {
    values.push(value)
    where.push(`${column} = $${values.length}`)
  }
  if (Object.keys(q.filter.metadata).length > 0) {
    values.push(JSON.stringify(q.filter.metadata))
    where.push(`metadata @> $${values.length}::jsonb`)
  }
  // pgvector's <#> is the negative inner product, so negating either distance gives "higher is closer".
  const score =
    q.distance === 'cosine' ? `1 - (embedding ${operator} $1::${cast})` : `-(embedding ${operator} $1::${cast})`
  const text = `SELECT ${score} AS score, entity_type, entity_key, chunk_id, content, source_topic, source_partition, source_offset,
       source_ts, visible_at, topology_version, embedding_model
FROM ${q.view}${where.length ? `\nWHERE ${where.join(' AND ')}` : ''}
ORDER BY embedding ${operator} $1::${cast}
LIMIT $2`
  return { text, values }
}

export interface NeighbourRow {
  readonly score: number
  readonly entity_type: string
  readonly entity_key: string
  readonly chunk_id: string
  readonly content: string
  readonly source_topic: string
  readonly source_partition: number
  readonly source_offset: string
  readonly source_ts: Date
  readonly visible_at: Date
  readonly topology_version: string
  readonly embedding_model: string
}

/**
 * Runs the search in a read-only transaction. With filters, pgvector's iterative index scan keeps
 * reading the HNSW graph until k rows pass them (instead of returning fewer than k).
 */
export async function nearestNeighbours(client: pg.Client, q: NearestNeighbourQuery): Promise<NeighbourRow[]> {
  await client.query('BEGIN READ ONLY')
  try {
    const storage = q.storage ?? (await embeddingStorage(client, q.view))
    const { text, values } = nearestNeighbourSql({ ...q, storage })
    // HNSW: a wider candidate list for larger k. IVFFlat: probe 10 lists (pgvector's default of 1 loses
    // recall); relaxed_order keeps probing until k rows pass the filters (IVFFlat has no strict_order).
    await client.query(
      `SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'strict_order', true),
              set_config('ivfflat.probes', '10', true), set_config('ivfflat.iterative_scan', 'relaxed_order', true)`,
      [String(Math.min(1000, Math.max(40, q.k * 4)))],
    )
    const result = await client.query<NeighbourRow>(text, values)
    await client.query('COMMIT')
    return result.rows.map((r) => ({ ...r, score: Number(r.score) }))
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  }
}

/** `vector` or `halfvec`: the type of the view's (or table's) embedding column. */
export async function embeddingStorage(client: pg.Client, view: string): Promise<VectorStorage> {
  const found = await client.query<{ type: string | null }>(
    `SELECT format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
     WHERE a.attrelid = to_regclass($1) AND a.attname = 'embedding' AND NOT a.attisdropped`,
    [view],
  )
  return found.rows[0]?.type?.startsWith('halfvec') ? 'halfvec' : 'vector'
}

function snippet(text: string, width: number): string {
  const flat = terminalSafe(text.replace(/\s+/g, ' ').trim(), { singleLine: true })
  return flat.length > width ? `${flat.slice(0, width - 1)}…` : flat
}

/** A plain-text table: score, entity, chunk, snippet, lineage. */
export function formatNeighbours(rows: readonly NeighbourRow[]): string {
  const header = ['score', 'entity', 'chunk', 'snippet', 'lineage']
  // Every cell is data someone else wrote: no control or bidi character reaches the terminal.
  const lines = rows.map((r) =>
    [
      r.score.toFixed(4),
      `${r.entity_type}:${r.entity_key}`,
      r.chunk_id,
      snippet(r.content, 60),
      `${r.source_topic}[${r.source_partition}]@${r.source_offset} ${r.topology_version} ${r.embedding_model}`,
    ].map((cell) => terminalSafe(cell, { singleLine: true })),
  )
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)))
  const fmt = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n') + '\n'
}
