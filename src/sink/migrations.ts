/**
 * Schema management for the pgvector sink, run as the owner role (never as the sink role):
 *
 * - versioned migrations of the shared tables (offsets, audit, rejects, analyst grants, the
 *   topology-version registry), recorded in `<schema>.schema_migrations` and applied once each;
 * - one chunk table per topology version (`vector(<dims>)`, HNSW, btree on entity, GIN on
 *   metadata), recorded in `topology_versions` with its dims, so a later run with other dims fails
 *   instead of silently writing into the wrong shape;
 * - a view per topology (and a freshness view) pointing at the active version.
 *
 * Every step is idempotent and runs under a transaction-scoped advisory lock, so two processes
 * migrating at once serialize. Identifiers were checked and quoted by `resolveSinkConfig`; the only
 * other text interpolated into DDL are validated integers (dims, m, ef_construction).
 */
import type pg from 'pg'
import { ConfigError, RagstreamError } from '../errors.ts'
import { opclassFor, type SinkConfig, type SinkNames } from './config.ts'
import { checkIdentifier, quoteIdent } from './identifiers.ts'

interface Migration {
  readonly version: number
  readonly name: string
  sql(names: SinkNames): string
}

/** Append only: a released migration never changes. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'shared sink tables',
    sql: (n) => `
      CREATE TABLE ${n.versionsTable} (
        topology text NOT NULL,
        version text NOT NULL,
        table_name text NOT NULL,
        dims integer NOT NULL,
        distance text NOT NULL,
        hnsw_m integer NOT NULL,
        hnsw_ef_construction integer NOT NULL,
        active boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        activated_at timestamptz,
        PRIMARY KEY (topology, version)
      );
      CREATE UNIQUE INDEX topology_versions_one_active ON ${n.versionsTable} (topology) WHERE active;

      -- The sink's exactly-once state and fence: the next offset to read per topic-partition,
      -- and the token of the sink instance that last claimed the partition.
      CREATE TABLE ${n.offsetsTable} (
        topic text NOT NULL,
        partition integer NOT NULL,
        next_offset bigint NOT NULL,
        owner_token uuid NOT NULL,
        claimed_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (topic, partition)
      );

      -- Governance proof: ids and counts, never raw PII. The sink may INSERT only.
      CREATE TABLE ${n.auditTable} (
        event_id text PRIMARY KEY,
        kind text NOT NULL,
        topology text NOT NULL,
        topology_version text,
        request_id text,
        subject_hash text,
        entity_key_hash text,
        reason text,
        counts jsonb NOT NULL DEFAULT '{}',
        at timestamptz NOT NULL,
        source_topic text NOT NULL,
        source_partition integer NOT NULL,
        source_offset bigint NOT NULL,
        written_at timestamptz NOT NULL DEFAULT clock_timestamp()
      );
      CREATE INDEX audit_events_request ON ${n.auditTable} (request_id);

      -- Records the sink could not apply (undecodable, wrong dims, bad metadata): never dropped silently.
      CREATE TABLE ${n.rejectsTable} (
        topic text NOT NULL,
        partition integer NOT NULL,
        "offset" bigint NOT NULL,
        error_code text NOT NULL,
        message text NOT NULL,
        record_key text,
        rejected_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (topic, partition, "offset")
      );

      -- Which classifications and tenants each analyst role may read ('*' = all). Row-level
      -- security on the chunk tables looks rows up here by current_user.
      CREATE TABLE ${n.grantsTable} (
        role_name name NOT NULL,
        dimension text NOT NULL CHECK (dimension IN ('classification', 'tenant')),
        value text NOT NULL,
        PRIMARY KEY (role_name, dimension, value)
      );
      ALTER TABLE ${n.grantsTable} ENABLE ROW LEVEL SECURITY;
      CREATE POLICY own_grants ON ${n.grantsTable} FOR SELECT TO PUBLIC USING (role_name = current_user);
    `,
  },
  {
    version: 2,
    name: 'analyst grants scoped to a topology and version',
    // A grant was global: granting a role a tenant on one topology granted it on every topology. Now
    // each grant names its topology and version ('*' = every version of that topology). Existing grants
    // become one grant per topology that existed, which is exactly what they gave until now; topologies
    // created later are no longer granted implicitly. The chunk tables' policies are rebuilt by migrate().
    sql: (n) => `
      ALTER TABLE ${n.grantsTable} DROP CONSTRAINT analyst_grants_pkey,
        ADD COLUMN topology text, ADD COLUMN topology_version text NOT NULL DEFAULT '*';
      INSERT INTO ${n.grantsTable} (role_name, dimension, value, topology, topology_version)
        SELECT g.role_name, g.dimension, g.value, v.topology, '*'
        FROM ${n.grantsTable} g CROSS JOIN (SELECT DISTINCT topology FROM ${n.versionsTable}) v
        WHERE g.topology IS NULL;
      DELETE FROM ${n.grantsTable} WHERE topology IS NULL;
      ALTER TABLE ${n.grantsTable} ALTER COLUMN topology SET NOT NULL,
        ADD PRIMARY KEY (role_name, topology, topology_version, dimension, value);
    `,
  },
  {
    version: 3,
    name: 'tenant tables (tenant isolation mode)',
    // Which tenants of a topology version have a table of their own (tenant-isolation.ts): the sink's
    // trigger copies each row into its tenant's table, and a tenant's analysts read only that table.
    sql: (n) => `
      CREATE TABLE ${n.tenantTablesTable} (
        topology text NOT NULL,
        version text NOT NULL,
        tenant text NOT NULL,
        table_name text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topology, version, tenant)
      );
    `,
  },
  {
    version: 4,
    name: 'pgvector storage and index method per topology version',
    // Each version records its embedding column type (vector | halfvec) and index method (hnsw |
    // ivfflat, with lists): like dims, fixed once the table exists. Existing versions were vector + HNSW.
    sql: (n) => `
      ALTER TABLE ${n.versionsTable}
        ADD COLUMN storage text NOT NULL DEFAULT 'vector' CHECK (storage IN ('vector', 'halfvec')),
        ADD COLUMN index_method text NOT NULL DEFAULT 'hnsw' CHECK (index_method IN ('hnsw', 'ivfflat')),
        ADD COLUMN ivfflat_lists integer;
    `,
  },
  {
    version: 5,
    name: 'deferred vector index (bulk load)',
    // `deferred`: the version's table is bulk-loaded without its vector index (replay --bulk); it may
    // not be activated until buildVectorIndex has built the index and set `ready`.
    sql: (n) => `
      ALTER TABLE ${n.versionsTable}
        ADD COLUMN index_state text NOT NULL DEFAULT 'ready' CHECK (index_state IN ('deferred', 'ready')),
        ADD COLUMN index_built_at timestamptz;
    `,
  },
  {
    version: 7,
    name: 'sink rejects name the source lineage',
    // A rejected chunk event names the change it was derived from (its lineage: source topic,
    // partition, offset), so a reject leads to the source record, not only to the chunk topic's
    // position. NULL for records that carry no lineage (undecodable values, audit events).
    sql: (n) => `
      ALTER TABLE ${n.rejectsTable}
        ADD COLUMN source_topic text, ADD COLUMN source_partition integer, ADD COLUMN source_offset bigint;
    `,
  },
  {
    version: 8,
    name: 'chunk rows record when their change reached its source topic',
    // source_appended_at: when the change that made the row version was appended to its source topic
    // (the chunk event's lineage.change.appended_at_ms), which splits freshness into capture
    // (source_ts → source_appended_at) and ragstream (source_appended_at → visible_at). NULL for rows
    // written before it existed and for events without it. Added last to every chunk table, shared and
    // per tenant, so they keep one column order (the tenant trigger copies whole rows); the views gain
    // it when migrate re-creates the active version's views (refreshViews).
    sql: (n) => `
      DO $migrate$
      DECLARE t text;
      BEGIN
        FOR t IN SELECT table_name FROM ${n.versionsTable} UNION SELECT table_name FROM ${n.tenantTablesTable} LOOP
          EXECUTE format('ALTER TABLE IF EXISTS %I.%I ADD COLUMN IF NOT EXISTS source_appended_at timestamptz', ${literal(n.schema)}, t);
        END LOOP;
      END $migrate$;
    `,
  },
]

export interface MigrateResult {
  readonly applied: readonly number[]
  readonly createdVersion: boolean
  readonly activated: boolean
}

export async function inTransaction<T>(client: pg.Client, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN')
  try {
    const result = await fn()
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  }
}

export async function lockSchema(client: pg.Client, names: SinkNames): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`ragstream.migrate.${names.schema}`])
}

/**
 * Brings the schema to the latest migration, creates the topology version's table if missing,
 * re-applies grants, and activates the version when the topology has no active one yet.
 * Must run as the owner role; the schemas must exist and belong to it (see `bootstrapDatabase`).
 */
export async function migrate(owner: pg.Client, config: SinkConfig): Promise<MigrateResult> {
  const n = config.names
  return inTransaction(owner, async () => {
    await lockSchema(owner, n)
    await owner.query(`CREATE TABLE IF NOT EXISTS ${n.migrationsTable} (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
    const done = new Set(
      (await owner.query<{ version: number }>(`SELECT version FROM ${n.migrationsTable}`)).rows.map((r) => r.version),
    )
    const applied: number[] = []
    for (const migration of MIGRATIONS) {
      if (done.has(migration.version)) continue
      await owner.query(migration.sql(n))
      await owner.query(`INSERT INTO ${n.migrationsTable} (version, name) VALUES ($1, $2)`, [
        migration.version,
        migration.name,
      ])
      applied.push(migration.version)
    }
    await grantSinkRole(owner, n)
    // Grants just became topology-scoped: every existing chunk table gets the scoped policy now.
    if (applied.includes(2)) {
      const tables = await owner.query<{ topology: string; version: string; table_name: string }>(
        `SELECT topology, version, table_name FROM ${n.versionsTable}`,
      )
      for (const v of tables.rows)
        await owner.query(
          analystPolicySql(n, `${quoteIdent(n.schema)}.${quoteIdent(v.table_name)}`, v.topology, v.version),
        )
    }
    const createdVersion = await ensureTopologyVersion(owner, config)
    await refreshViews(owner, config)
    const active = await owner.query(`SELECT version FROM ${n.versionsTable} WHERE topology = $1 AND active`, [
      config.topology,
    ])
    let activated = false
    // A bulk-loading version cannot serve: it is activated (or promoted) once its index is built.
    const state = await owner.query<{ index_state: string }>(
      `SELECT index_state FROM ${n.versionsTable} WHERE topology = $1 AND version = $2`,
      [config.topology, config.version],
    )
    if (active.rowCount === 0 && state.rows[0]?.index_state !== 'deferred') {
      await activateInTransaction(owner, config)
      activated = true
    }
    return { applied, createdVersion, activated }
  })
}

async function grantSinkRole(owner: pg.Client, n: SinkNames): Promise<void> {
  const sink = quoteIdent(n.sinkRole)
  await owner.query(`
    GRANT USAGE ON SCHEMA ${quoteIdent(n.schema)} TO ${sink};
    GRANT SELECT ON ${n.versionsTable} TO ${sink};
    GRANT SELECT, INSERT, UPDATE ON ${n.offsetsTable} TO ${sink};
    GRANT INSERT ON ${n.auditTable} TO ${sink};
    GRANT INSERT ON ${n.rejectsTable} TO ${sink};
    GRANT SELECT ON ${n.tenantTablesTable} TO ${sink};
  `)
}

/** The chunk table's columns, in view order: what analysts read. */
export const CHUNK_COLUMNS = [
  'chunk_id',
  'entity_type',
  'entity_key',
  'chunk_index',
  'content',
  'content_hash',
  'embedding',
  'metadata',
  'classification',
  'tenant',
  'region',
  'subjects',
  'policy_version',
  'source_topic',
  'source_partition',
  'source_offset',
  'source_position',
  'source_ts',
  'topology',
  'topology_version',
  'chunker',
  'embedding_model',
  'emitted_at',
  'chunk_topic',
  'chunk_partition',
  'chunk_offset',
  'visible_at',
  'written_by',
  'source_appended_at',
] as const

/** A SQL string literal of a name that passed checkIdentifier (no quote can be in it; doubled anyway). */
export function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}

/**
 * Row-level security for analysts on one chunk table: a row is visible when the role holds a grant on
 * this table's topology and version ('*' = every version) for the row's classification and tenant.
 * The topology and version are literals here (one policy per table), so the planner compares constants.
 */
export function analystPolicySql(n: SinkNames, table: string, topology: string, version: string): string {
  const scope = `g.role_name = current_user AND g.topology = ${literal(topology)} AND g.topology_version IN ('*', ${literal(version)})`
  return `
    DROP POLICY IF EXISTS analyst_reads ON ${table};
    CREATE POLICY analyst_reads ON ${table} FOR SELECT TO PUBLIC USING (
      EXISTS (SELECT 1 FROM ${n.grantsTable} g WHERE ${scope} AND g.dimension = 'classification'
              AND g.value IN ('*', coalesce(classification, '')))
      AND EXISTS (SELECT 1 FROM ${n.grantsTable} g WHERE ${scope} AND g.dimension = 'tenant'
              AND g.value IN ('*', coalesce(tenant, ''))));`
}

async function ensureTopologyVersion(owner: pg.Client, config: SinkConfig): Promise<boolean> {
  const n = config.names
  const existing = await owner.query<{
    dims: number
    distance: string
    hnsw_m: number
    hnsw_ef_construction: number
    storage: string
    index_method: string
    ivfflat_lists: number | null
    index_state: string
  }>(
    `SELECT dims, distance, hnsw_m, hnsw_ef_construction, storage, index_method, ivfflat_lists, index_state
     FROM ${n.versionsTable} WHERE topology = $1 AND version = $2`,
    [config.topology, config.version],
  )
  if (existing.rowCount) {
    const row = existing.rows[0]
    const problems = []
    if (row.dims !== config.dims)
      problems.push({
        path: '/sink/dims',
        message: `${config.topology}@${config.version} was created with ${row.dims} dimensions, not ${config.dims}; re-index into a new version`,
      })
    if (row.distance !== config.distance)
      problems.push({
        path: '/sink/distance',
        message: `${config.topology}@${config.version} was created with ${row.distance}, not ${config.distance}`,
      })
    if (row.storage !== config.storage)
      problems.push({
        path: '/sink/storage',
        message: `${config.topology}@${config.version} stores embeddings as ${row.storage}, not ${config.storage}; re-index into a new version to change it`,
      })
    if (row.index_method !== config.index)
      problems.push({
        path: '/sink/index',
        message: `${config.topology}@${config.version} was indexed with ${row.index_method}, not ${config.index}; re-index into a new version to change it`,
      })
    else if (config.index === 'ivfflat' && row.ivfflat_lists !== config.ivfflat.lists)
      problems.push({
        path: '/sink/ivfflat/lists',
        message: `${config.topology}@${config.version} was indexed with lists=${row.ivfflat_lists}, not ${config.ivfflat.lists}; re-index into a new version to change it`,
      })
    if (
      config.index === 'hnsw' &&
      (row.hnsw_m !== config.hnsw.m || row.hnsw_ef_construction !== config.hnsw.efConstruction)
    ) {
      problems.push({
        path: '/sink/hnsw',
        message: `${config.topology}@${config.version} was indexed with m=${row.hnsw_m}, ef_construction=${row.hnsw_ef_construction}; re-index into a new version to change them`,
      })
    }
    if (problems.length) throw new ConfigError(problems, 'sink configuration')
  }
  // A version being bulk-loaded gets its vector index from buildVectorIndex, once, after the load.
  const deferred = existing.rowCount ? existing.rows[0].index_state === 'deferred' : config.deferIndex
  const vectorIndex = deferred ? '' : `${vectorIndexSql(config)};`
  const t = n.chunkTable
  const sink = quoteIdent(n.sinkRole)
  await owner.query(`
    CREATE TABLE IF NOT EXISTS ${t} (
      chunk_id text PRIMARY KEY,
      entity_type text NOT NULL,
      entity_key text NOT NULL,
      chunk_index integer NOT NULL,
      content text NOT NULL,
      content_hash text NOT NULL,
      embedding ${config.storage}(${config.dims}) NOT NULL,
      metadata jsonb NOT NULL,
      classification text,
      tenant text,
      region text,
      subjects text[] NOT NULL,
      policy_version text,
      source_topic text NOT NULL,
      source_partition integer NOT NULL,
      source_offset bigint NOT NULL,
      source_position text,
      source_ts timestamptz NOT NULL,
      topology text NOT NULL,
      topology_version text NOT NULL,
      chunker text NOT NULL,
      embedding_model text NOT NULL,
      emitted_at timestamptz NOT NULL,
      chunk_topic text NOT NULL,
      chunk_partition integer NOT NULL,
      chunk_offset bigint NOT NULL,
      visible_at timestamptz NOT NULL,
      written_by text NOT NULL,
      source_appended_at timestamptz
    );
    ${vectorIndex}
    CREATE INDEX IF NOT EXISTS ${quoteIdent(n.indexNames.entity)} ON ${t} (entity_type, entity_key);
    CREATE INDEX IF NOT EXISTS ${quoteIdent(n.indexNames.metadata)} ON ${t} USING gin (metadata jsonb_path_ops);

    -- Where a chunk was deleted: an older upsert replayed after its tombstone must not resurrect it.
    -- removed_at and subject_hashes (sha256 hex, never the subjects) prove which rows a forget removed.
    CREATE TABLE IF NOT EXISTS ${n.tombstoneTable} (
      chunk_id text PRIMARY KEY,
      chunk_offset bigint NOT NULL,
      deleted_at timestamptz NOT NULL,
      removed_at timestamptz,
      subject_hashes text[] NOT NULL DEFAULT '{}'
    );
    CREATE INDEX IF NOT EXISTS ${quoteIdent(n.indexNames.tombstoneSubjects)} ON ${n.tombstoneTable} USING gin (subject_hashes);

    ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY;
    ALTER TABLE ${t} FORCE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS sink_writes ON ${t};
    CREATE POLICY sink_writes ON ${t} FOR ALL TO ${sink} USING (true) WITH CHECK (true);
    ${analystPolicySql(n, t, config.topology, config.version)}

    GRANT SELECT, INSERT, UPDATE, DELETE ON ${t} TO ${sink};
    GRANT SELECT, INSERT, UPDATE ON ${n.tombstoneTable} TO ${sink};
  `)
  // Analysts granted every version of this topology (or this version) read this table too (rows still
  // filtered by RLS); nobody else: a grant on another topology or another version gives nothing here.
  const analysts = await owner.query<{ role_name: string }>(
    `SELECT DISTINCT role_name FROM ${n.grantsTable} WHERE topology = $1 AND topology_version IN ('*', $2)`,
    [config.topology, config.version],
  )
  for (const { role_name } of analysts.rows) {
    if ((await owner.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role_name])).rowCount) {
      await owner.query(`GRANT SELECT ON ${t} TO ${quoteIdent(role_name)}`)
    }
  }
  if (existing.rowCount) return false
  await owner.query(
    `INSERT INTO ${n.versionsTable}
       (topology, version, table_name, dims, distance, hnsw_m, hnsw_ef_construction, storage, index_method, ivfflat_lists,
        index_state, index_built_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CASE WHEN $11 = 'ready' THEN now() END)`,
    [
      config.topology,
      config.version,
      n.chunkTableName,
      config.dims,
      config.distance,
      config.hnsw.m,
      config.hnsw.efConstruction,
      config.storage,
      config.index,
      config.index === 'ivfflat' ? config.ivfflat.lists : null,
      deferred ? 'deferred' : 'ready',
    ],
  )
  return true
}

/** The vector index of a version's table as configured (integers validated; storage and method from closed lists). */
export function vectorIndexSql(config: SinkConfig): string {
  const n = config.names
  const opclass = opclassFor(config.storage, config.distance)
  return config.index === 'ivfflat'
    ? `CREATE INDEX IF NOT EXISTS ${quoteIdent(n.indexNames.ivfflat)} ON ${n.chunkTable}
      USING ivfflat (embedding ${opclass}) WITH (lists = ${config.ivfflat.lists})`
    : `CREATE INDEX IF NOT EXISTS ${quoteIdent(n.indexNames.hnsw)} ON ${n.chunkTable}
      USING hnsw (embedding ${opclass}) WITH (m = ${config.hnsw.m}, ef_construction = ${config.hnsw.efConstruction})`
}

export interface IndexBuildOptions {
  /** `maintenance_work_mem` for the build, e.g. `1GB`; default `512MB`. The HNSW graph should fit in it. */
  readonly maintenanceWorkMem?: string
  /** `max_parallel_maintenance_workers` for the build; default 2 (PostgreSQL caps it by max_worker_processes). */
  readonly parallelWorkers?: number
}

/**
 * Builds the deferred vector index of a bulk-loaded version once (pgvector builds HNSW in parallel
 * with enough maintenance_work_mem) and marks the version `ready`, so it may be activated. Idempotent:
 * a version already `ready` is left alone. Run as the owner, while the version is not yet serving.
 */
export async function buildVectorIndex(
  owner: pg.Client,
  config: SinkConfig,
  options: IndexBuildOptions = {},
): Promise<{ built: boolean; seconds: number }> {
  const n = config.names
  const memory = options.maintenanceWorkMem ?? '512MB'
  if (!/^\d{1,7}(kB|MB|GB)$/.test(memory))
    throw new ConfigError([{ path: '--maintenance-work-mem', message: `must look like 512MB or 2GB (got ${memory})` }])
  const workers = options.parallelWorkers ?? 2
  if (!Number.isInteger(workers) || workers < 0 || workers > 64)
    throw new ConfigError([{ path: '--parallel-workers', message: `must be an integer from 0 to 64 (got ${workers})` }])
  const started = Date.now()
  const built = await inTransaction(owner, async () => {
    // Not the schema's migration lock: a build takes minutes to hours, and every other version and
    // topology of the schema must keep migrating meanwhile. Builds of this version serialize on their
    // own lock (and its registry row); DDL on this table waits on the build's table lock by itself.
    await owner.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
      `ragstream.index.${n.schema}.${config.topology}.${config.version}`,
    ])
    const state = await owner.query<{ index_state: string }>(
      `SELECT index_state FROM ${n.versionsTable} WHERE topology = $1 AND version = $2 FOR UPDATE`,
      [config.topology, config.version],
    )
    if (!state.rowCount)
      throw new ConfigError(
        [{ path: '/sink/version', message: `${config.topology}@${config.version} has not been migrated` }],
        'sink configuration',
      )
    if (state.rows[0].index_state === 'ready') return false
    await owner.query(
      `SELECT set_config('maintenance_work_mem', $1, true), set_config('max_parallel_maintenance_workers', $2, true)`,
      [memory, String(workers)],
    )
    await owner.query(vectorIndexSql(config))
    await owner.query(
      `UPDATE ${n.versionsTable} SET index_state = 'ready', index_built_at = now() WHERE topology = $1 AND version = $2`,
      [config.topology, config.version],
    )
    return true
  })
  return { built, seconds: (Date.now() - started) / 1000 }
}

/** Refuses to let a version whose vector index is still deferred serve. */
async function checkIndexBuilt(owner: pg.Client, config: SinkConfig): Promise<void> {
  const state = await owner.query<{ index_state: string }>(
    `SELECT index_state FROM ${config.names.versionsTable} WHERE topology = $1 AND version = $2`,
    [config.topology, config.version],
  )
  if (state.rows[0]?.index_state === 'deferred')
    throw new RagstreamError(
      'RS_INDEX_NOT_BUILT',
      `${config.topology}@${config.version} is being bulk-loaded: its vector index has not been built, so it cannot serve yet`,
      {
        context: { topology: config.topology, version: config.version },
        hint: 'let `ragstream replay --bulk` finish (it builds the index once caught up), then promote',
      },
    )
}

async function activateInTransaction(owner: pg.Client, config: SinkConfig): Promise<void> {
  const n = config.names
  await checkIndexBuilt(owner, config)
  await owner.query(`UPDATE ${n.versionsTable} SET active = false WHERE topology = $1 AND active`, [config.topology])
  await owner.query(
    `UPDATE ${n.versionsTable} SET active = true, activated_at = now() WHERE topology = $1 AND version = $2`,
    [config.topology, config.version],
  )
  // CREATE OR REPLACE VIEW cannot change a column's type: a version with other dims or storage
  // (vector → halfvec) replaces the views, in this transaction, and re-grants them to the analysts.
  const current = await owner.query<{ type: string }>(
    `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute
     WHERE attrelid = to_regclass($1) AND attname = 'embedding' AND NOT attisdropped`,
    [n.view],
  )
  const replaced = current.rowCount !== 0 && current.rows[0].type !== `${config.storage}(${config.dims})`
  if (replaced) await owner.query(`DROP VIEW ${n.freshnessView}; DROP VIEW ${n.view};`)
  await owner.query(viewsSql(n, n.chunkTable))
  if (!replaced) return
  const analysts = await owner.query<{ role_name: string }>(
    `SELECT DISTINCT g.role_name FROM ${n.grantsTable} g JOIN pg_roles r ON r.rolname = g.role_name WHERE g.topology = $1`,
    [config.topology],
  )
  for (const { role_name } of analysts.rows)
    await owner.query(`GRANT SELECT ON ${n.view}, ${n.freshnessView} TO ${quoteIdent(role_name)}`)
}

/**
 * The topology's views over one version's chunk table. security_invoker: the view runs with the
 * analyst's privileges, so RLS on the table applies to them. Freshness (docs/sql.md): visible_at −
 * source_ts end to end, split at source_appended_at into capture (source_ts → source_appended_at)
 * and ragstream (source_appended_at → visible_at); percentiles skip rows without it (NULL).
 */
function viewsSql(n: SinkNames, chunkTable: string): string {
  const recent = `FILTER (WHERE visible_at > now() - interval '5 minutes')`
  return `
    CREATE OR REPLACE VIEW ${n.view} WITH (security_invoker = true) AS SELECT ${CHUNK_COLUMNS.join(', ')} FROM ${chunkTable};
    CREATE OR REPLACE VIEW ${n.freshnessView} WITH (security_invoker = true) AS
      SELECT topology, topology_version,
             count(*) AS chunks,
             count(DISTINCT (entity_type, entity_key)) AS entities,
             max(source_ts) AS newest_source_ts,
             max(visible_at) AS last_visible_at,
             avg(visible_at - source_ts) AS avg_lag,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY visible_at - source_ts) AS p50_lag,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY visible_at - source_ts) AS p95_lag,
             max(visible_at - source_ts) AS max_lag,
             now() - max(visible_at) AS since_last_write,
             -- Live freshness: the same over the rows made visible in the last 5 minutes (the columns
             -- above cover every row, so an old backfill dominates them).
             count(*) ${recent} AS chunks_5m,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY visible_at - source_ts) ${recent} AS p50_lag_5m,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY visible_at - source_ts) ${recent} AS p99_lag_5m,
             -- The split, over the rows that know when their change reached its source topic.
             count(source_appended_at) AS split_chunks,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY source_appended_at - source_ts) AS capture_p50,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY source_appended_at - source_ts) AS capture_p99,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY visible_at - source_appended_at) AS ragstream_p50,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY visible_at - source_appended_at) AS ragstream_p99,
             count(source_appended_at) ${recent} AS split_chunks_5m,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY source_appended_at - source_ts) ${recent} AS capture_p50_5m,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY source_appended_at - source_ts) ${recent} AS capture_p99_5m,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY visible_at - source_appended_at) ${recent} AS ragstream_p50_5m,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY visible_at - source_appended_at) ${recent} AS ragstream_p99_5m
      FROM ${n.view}
      GROUP BY topology, topology_version;
  `
}

/**
 * Views created before a migration added columns to the chunk tables (migration 8: source_appended_at)
 * lack them: re-created over the active version's table, in the migration's transaction. CREATE OR
 * REPLACE VIEW may append columns, so analysts' grants stay.
 */
async function refreshViews(owner: pg.Client, config: SinkConfig): Promise<void> {
  const n = config.names
  const stale = await owner.query(
    `SELECT 1 FROM pg_class c WHERE c.oid = to_regclass($1)
       AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'source_appended_at' AND NOT a.attisdropped)`,
    [n.view],
  )
  if (stale.rowCount === 0) return
  const active = await owner.query<{ table_name: string }>(
    `SELECT table_name FROM ${n.versionsTable} WHERE topology = $1 AND active`,
    [config.topology],
  )
  if (active.rowCount === 0) return
  await owner.query(viewsSql(n, `${quoteIdent(n.schema)}.${quoteIdent(active.rows[0].table_name)}`))
}

/** Points the topology's views at this version (it must have been migrated). One transaction. */
export async function activateVersion(owner: pg.Client, config: SinkConfig): Promise<void> {
  await inTransaction(owner, async () => {
    await lockSchema(owner, config.names)
    const found = await owner.query(
      `SELECT 1 FROM ${config.names.versionsTable} WHERE topology = $1 AND version = $2`,
      [config.topology, config.version],
    )
    if (!found.rowCount)
      throw new ConfigError(
        [{ path: '/sink/version', message: `${config.topology}@${config.version} has not been migrated` }],
        'sink configuration',
      )
    await activateInTransaction(owner, config)
  })
}

export interface AnalystAccess {
  /** Classifications the role may read; `*` = all, `` (empty) = rows without a classification. */
  readonly classifications: readonly string[]
  readonly tenants: readonly string[]
  /** The one version the grant covers; default every version of the topology (`*`), later ones included. */
  readonly version?: string
}

/**
 * Refuses roles that must never be analysts: PUBLIC (every role), superusers and BYPASSRLS roles
 * (row-level security does not apply to them, so a grant would read as "everything"), roles that
 * cannot log in (group roles: granting one grants every member), roles that do not exist, and the
 * owner and sink roles.
 */
export async function checkAnalystRole(client: pg.Client, names: SinkNames, role: string): Promise<void> {
  const refuse = (message: string, hint?: string): never => {
    throw new ConfigError([{ path: '/analyst/role', message }], 'grant', 'RS_CONFIG_INVALID', hint)
  }
  if (role.toLowerCase() === 'public') refuse('must not be PUBLIC (that would grant every role)')
  checkIdentifier('/analyst/role', role)
  if (role === names.ownerRole || role === names.sinkRole) refuse('must not be the owner or sink role')
  const found = await client.query<{ rolsuper: boolean; rolbypassrls: boolean; rolcanlogin: boolean }>(
    'SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1',
    [role],
  )
  if (!found.rowCount) refuse(`role ${role} does not exist`, `create it first: CREATE ROLE ${role} LOGIN PASSWORD '…'`)
  const r = found.rows[0]
  if (r.rolsuper) refuse(`${role} is a superuser: row-level security does not apply to it`)
  if (r.rolbypassrls) refuse(`${role} has BYPASSRLS: row-level security does not apply to it`)
  if (!r.rolcanlogin)
    refuse(
      `${role} cannot log in (a group role): a grant would reach every member`,
      'grant each analyst login role separately',
    )
}

/**
 * Lets an existing login role read the topology's views, restricted by row-level security to the
 * given classifications and tenants of this topology only (replacing what it had on this topology;
 * its grants on other topologies are untouched). Run as the owner.
 */
export async function grantAnalyst(
  owner: pg.Client,
  config: SinkConfig,
  role: string,
  access: AnalystAccess,
): Promise<void> {
  const n = config.names
  await checkAnalystRole(owner, n, role)
  const version = access.version ?? '*'
  if (version !== '*') checkIdentifier('/analyst/version', version, 'topology-name')
  const r = quoteIdent(role)
  await inTransaction(owner, async () => {
    await owner.query(`DELETE FROM ${n.grantsTable} WHERE role_name = $1 AND topology = $2`, [role, config.topology])
    await owner.query(
      `INSERT INTO ${n.grantsTable} (role_name, topology, topology_version, dimension, value)
       SELECT $1, $2, $3, d, v FROM unnest($4::text[], $5::text[]) AS u(d, v)`,
      [
        role,
        config.topology,
        version,
        [...access.classifications.map(() => 'classification'), ...access.tenants.map(() => 'tenant')],
        [...access.classifications, ...access.tenants],
      ],
    )
    const tables = await owner.query<{ table_name: string }>(
      `SELECT table_name FROM ${n.versionsTable} WHERE topology = $1 AND (version = $2 OR $2 = '*')`,
      [config.topology, version],
    )
    await owner.query(`GRANT USAGE ON SCHEMA ${quoteIdent(n.viewSchema)} TO ${r}`)
    await owner.query(`GRANT SELECT ON ${n.view}, ${n.freshnessView}, ${n.grantsTable} TO ${r}`)
    // security_invoker views need SELECT on the table itself; without USAGE on the table schema the
    // analyst still cannot name the table directly, and RLS filters rows either way.
    for (const { table_name } of tables.rows)
      await owner.query(`GRANT SELECT ON ${quoteIdent(n.schema)}.${quoteIdent(table_name)} TO ${r}`)
  })
}

/**
 * Serialises, for the rest of the transaction, every change ragstream makes to roles and to the
 * database's own ACL: two concurrent GRANT CONNECT ON DATABASE (two sinks bootstrapping, a demo creating
 * its analyst) update the same pg_database row, and the loser fails with "tuple concurrently updated".
 */
async function lockRolesAndDatabase(admin: pg.Client): Promise<void> {
  await admin.query('SELECT pg_advisory_xact_lock(hashtext($1))', ['ragstream.bootstrap'])
}

/**
 * Runs an idempotent catalog transaction again when Postgres refuses it with "tuple concurrently
 * updated": the lock above orders ragstream's own changes, but an administrator's REVOKE or DROP OWNED
 * (which rewrites the database ACL) can still change the row under a GRANT; the next attempt reads the
 * new row. (Locking the row FOR UPDATE first deadlocks with such a REVOKE instead.)
 */
async function retryingCatalogRace(run: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run()
    } catch (error) {
      if (attempt >= 10 || (error as Error).message !== 'tuple concurrently updated') throw error
      await new Promise((resolve) => setTimeout(resolve, 20 * attempt + Math.random() * 50))
    }
  }
}

/**
 * A login role (no superuser, no BYPASSRLS) that may connect to the current database, created if it
 * does not exist (with `comment` then); under the bootstrap lock, so it runs beside bootstrapDatabase.
 */
export async function ensureLoginRole(admin: pg.Client, role: string, comment?: string): Promise<void> {
  await retryingCatalogRace(() =>
    inTransaction(admin, async () => {
      await lockRolesAndDatabase(admin)
      const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])
      if (!exists.rowCount) {
        await admin.query(`CREATE ROLE ${quoteIdent(role)} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE`)
        if (comment !== undefined)
          await admin.query(`COMMENT ON ROLE ${quoteIdent(role)} IS ${admin.escapeLiteral(comment)}`)
      }
      const db = (await admin.query<{ db: string }>('SELECT current_database() AS db')).rows[0].db
      await admin.query(`GRANT CONNECT ON DATABASE ${quoteIdent(db)} TO ${quoteIdent(role)}`)
    }),
  )
}

/**
 * One-time setup a database administrator runs (superuser or a role with CREATEROLE and CREATE on
 * the database): the pgvector extension, the owner and sink roles (LOGIN, no superuser, no
 * BYPASSRLS), and both schemas owned by the owner role. Idempotent. docs/sql.md has the same as SQL.
 */
export async function bootstrapDatabase(admin: pg.Client, names: SinkNames): Promise<void> {
  const owner = quoteIdent(names.ownerRole)
  const sink = quoteIdent(names.sinkRole)
  await retryingCatalogRace(() =>
    inTransaction(admin, async () => {
      await lockRolesAndDatabase(admin)
      await admin.query('CREATE EXTENSION IF NOT EXISTS vector')
      for (const role of [names.ownerRole, names.sinkRole]) {
        const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])
        if (!exists.rowCount)
          await admin.query(`CREATE ROLE ${quoteIdent(role)} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE`)
      }
      await admin.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(names.schema)} AUTHORIZATION ${owner}`)
      await admin.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(names.viewSchema)} AUTHORIZATION ${owner}`)
      await admin.query(`REVOKE ALL ON SCHEMA ${quoteIdent(names.schema)}, ${quoteIdent(names.viewSchema)} FROM PUBLIC`)
      await admin.query(
        `GRANT CONNECT ON DATABASE ${quoteIdent((await admin.query<{ db: string }>('SELECT current_database() AS db')).rows[0].db)} TO ${owner}, ${sink}`,
      )
    }),
  )
}
