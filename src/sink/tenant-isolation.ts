/**
 * Tenant isolation mode: the tenant boundary is a GRANT, not row-level security.
 *
 * Row-level security filters rows after the planner has chosen how to find them, and PostgreSQL may
 * evaluate leakproof operators (`=`, `<`, `starts_with`, index conditions) before the policy: an
 * analyst's `EXPLAIN ANALYZE` then counts rows the policy hides ("Rows Removed by Filter"), and a
 * binary search reads hidden values. That is a documented PostgreSQL property (docs/sql.md); no policy
 * can close it. What closes it is never giving the analyst a relation that holds another tenant's rows.
 *
 * So, for a tenant isolated here, the owner creates a table of its own (`chunks_<topology>_<version>__<tenant>`,
 * same columns and indexes, RLS forced for clearance within the tenant) and a view
 * `<view schema>."<topology>__<tenant>"`; a trigger on the shared chunk table, run as the sink role in
 * the sink's batch transaction, keeps each isolated tenant's table an exact copy of that tenant's rows
 * (inserts, updates, tombstones, forgets, a row moving between tenants). Analysts granted with
 * `grantTenantAnalyst` get SELECT on their tenant's view and table only — nothing on the shared table,
 * so no plan of theirs can touch another tenant's rows.
 */
import type pg from 'pg'
import { ConfigError } from '../errors.ts'
import type { SinkConfig } from './config.ts'
import { checkIdentifier, derivedIdentifier, qualified, quoteIdent } from './identifiers.ts'
import { CHUNK_COLUMNS, analystPolicySql, checkAnalystRole, inTransaction, literal, lockSchema } from './migrations.ts'

export interface TenantTable {
  readonly tenant: string
  /** Quoted, schema-qualified. */
  readonly table: string
  readonly view: string
  readonly tableName: string
}

/** The names of a tenant's table and view (the tenant must be a lower-case name: it becomes an identifier). */
export function tenantTable(config: SinkConfig, tenant: string): TenantTable {
  checkIdentifier('/tenant', tenant, 'topology-name')
  const n = config.names
  const tableName = derivedIdentifier('/tenant', `${n.chunkTableName}__${tenant}`)
  const viewName = derivedIdentifier('/tenant', `${config.topology}__${tenant}`)
  return { tenant, tableName, table: qualified(n.schema, tableName), view: qualified(n.viewSchema, viewName) }
}

function triggerFunctionSql(config: SinkConfig): string {
  const n = config.names
  const fn = qualified(n.schema, 'ragstream_tenant_copy')
  // Not SECURITY DEFINER: it runs as whoever writes the shared table (the sink role), which has DML on
  // the tenant tables; identifiers come from the registry and are quoted with %I.
  return `
    CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $fn$
    DECLARE target text;
    BEGIN
      IF TG_OP IN ('UPDATE', 'DELETE') THEN
        FOR target IN SELECT table_name FROM ${n.tenantTablesTable}
                      WHERE topology = TG_ARGV[0] AND version = TG_ARGV[1] AND tenant = OLD.tenant LOOP
          EXECUTE format('DELETE FROM %I.%I WHERE chunk_id = $1', TG_TABLE_SCHEMA, target) USING OLD.chunk_id;
        END LOOP;
      END IF;
      IF TG_OP IN ('INSERT', 'UPDATE') THEN
        FOR target IN SELECT table_name FROM ${n.tenantTablesTable}
                      WHERE topology = TG_ARGV[0] AND version = TG_ARGV[1] AND tenant = NEW.tenant LOOP
          EXECUTE format('DELETE FROM %I.%I WHERE chunk_id = $1', TG_TABLE_SCHEMA, target) USING NEW.chunk_id;
          EXECUTE format('INSERT INTO %I.%I SELECT ($1).*', TG_TABLE_SCHEMA, target) USING NEW;
        END LOOP;
      END IF;
      RETURN NULL;
    END $fn$;
    CREATE OR REPLACE TRIGGER ragstream_tenant_copy AFTER INSERT OR UPDATE OR DELETE ON ${n.chunkTable}
      FOR EACH ROW EXECUTE FUNCTION ${fn}(${literal(config.topology)}, ${literal(config.version)});`
}

/**
 * Gives `tenant` a table and view of its own for this topology version (idempotent): creates them,
 * copies the tenant's rows while the sink's writes and analysts' reads of the shared table wait (an
 * ACCESS EXCLUSIVE lock on it for the copy), and from then on the trigger keeps them in step. Run as the owner.
 */
export async function isolateTenant(owner: pg.Client, config: SinkConfig, tenant: string): Promise<TenantTable> {
  const t = tenantTable(config, tenant)
  const n = config.names
  const sink = quoteIdent(n.sinkRole)
  await inTransaction(owner, async () => {
    await lockSchema(owner, n)
    await owner.query(`LOCK TABLE ${n.chunkTable} IN SHARE ROW EXCLUSIVE MODE`)
    await owner.query(`
      CREATE TABLE IF NOT EXISTS ${t.table} (LIKE ${n.chunkTable} INCLUDING ALL);
      ALTER TABLE ${t.table} ENABLE ROW LEVEL SECURITY;
      ALTER TABLE ${t.table} FORCE ROW LEVEL SECURITY;
      DROP POLICY IF EXISTS sink_writes ON ${t.table};
      CREATE POLICY sink_writes ON ${t.table} FOR ALL TO ${sink} USING (true) WITH CHECK (true);
      ${analystPolicySql(n, t.table, config.topology, config.version)}
      GRANT SELECT, INSERT, UPDATE, DELETE ON ${t.table} TO ${sink};
      ${triggerFunctionSql(config)}
      CREATE OR REPLACE VIEW ${t.view} WITH (security_invoker = true) AS SELECT ${CHUNK_COLUMNS.join(', ')} FROM ${t.table};
    `)
    await owner.query(
      `INSERT INTO ${n.tenantTablesTable} (topology, version, tenant, table_name) VALUES ($1, $2, $3, $4)
       ON CONFLICT (topology, version, tenant) DO NOTHING`,
      [config.topology, config.version, tenant, t.tableName],
    )
    // Row-level security is forced on the owner too: lift it for the copy only, inside this transaction
    // (ALTER TABLE holds an ACCESS EXCLUSIVE lock until commit, so no other session sees it lifted).
    for (const table of [n.chunkTable, t.table]) await owner.query(`ALTER TABLE ${table} NO FORCE ROW LEVEL SECURITY`)
    await owner.query(`DELETE FROM ${t.table}`)
    await owner.query(`INSERT INTO ${t.table} SELECT * FROM ${n.chunkTable} WHERE tenant = $1`, [tenant])
    for (const table of [n.chunkTable, t.table]) await owner.query(`ALTER TABLE ${table} FORCE ROW LEVEL SECURITY`)
  })
  return t
}

/**
 * Lets an existing login role read one isolated tenant of this topology version, with row-level
 * security for the classifications inside it: SELECT on that tenant's view and table, nothing on the
 * shared table or view (revoked if it had them). Replaces the role's grants on this topology. Run as the owner.
 */
export async function grantTenantAnalyst(
  owner: pg.Client,
  config: SinkConfig,
  role: string,
  access: { readonly tenant: string; readonly classifications: readonly string[] },
): Promise<void> {
  const n = config.names
  await checkAnalystRole(owner, n, role)
  const t = tenantTable(config, access.tenant)
  const r = quoteIdent(role)
  await inTransaction(owner, async () => {
    const isolated = await owner.query(
      `SELECT 1 FROM ${n.tenantTablesTable} WHERE topology = $1 AND version = $2 AND tenant = $3`,
      [config.topology, config.version, access.tenant],
    )
    if (!isolated.rowCount)
      throw new ConfigError(
        [
          {
            path: '/tenant',
            message: `tenant ${access.tenant} of ${config.topology}@${config.version} is not isolated`,
          },
        ],
        'grant',
        'RS_CONFIG_INVALID',
        'run isolateTenant (owner) for it first',
      )
    await owner.query(`DELETE FROM ${n.grantsTable} WHERE role_name = $1 AND topology = $2`, [role, config.topology])
    await owner.query(
      `INSERT INTO ${n.grantsTable} (role_name, topology, topology_version, dimension, value)
       SELECT $1, $2, $3, d, v FROM unnest($4::text[], $5::text[]) AS u(d, v)`,
      [
        role,
        config.topology,
        config.version,
        [...access.classifications.map(() => 'classification'), 'tenant'],
        [...access.classifications, access.tenant],
      ],
    )
    // The boundary: nothing that holds other tenants' rows.
    const shared = await owner.query<{ table_name: string }>(
      `SELECT table_name FROM ${n.versionsTable} WHERE topology = $1`,
      [config.topology],
    )
    for (const { table_name } of shared.rows)
      await owner.query(`REVOKE ALL ON ${qualified(n.schema, table_name)} FROM ${r}`)
    await owner.query(`REVOKE ALL ON ${n.view}, ${n.freshnessView} FROM ${r}`)
    await owner.query(`GRANT USAGE ON SCHEMA ${quoteIdent(n.viewSchema)} TO ${r}`)
    await owner.query(`GRANT SELECT ON ${t.view}, ${t.table}, ${n.grantsTable} TO ${r}`)
  })
}
