// Schema management and the SQL boundary, with real role connections: idempotent versioned
// migrations, one table per version behind a switchable view, and the RLS matrix.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { activateVersion, grantAnalyst, migrate, MIGRATIONS } from '../../src/sink/migrations.ts'
import { resolveSinkConfig } from '../../src/sink/config.ts'
import { BatchWriter, buildBatch, claimPartitions } from '../../src/sink/batch-writer.ts'
import type { ChunkRow } from '../../src/sink/chunk-codec.ts'
import { connect, createRoles, createSinkEnv, roleUrl, type SinkEnv } from './support.ts'

function row(env: SinkEnv, id: string, classification: string | null, tenant: string | null, offset: bigint): ChunkRow {
  return {
    chunkId: id,
    entityType: 'ticket',
    entityKey: id,
    chunkIndex: 0,
    content: id,
    contentHash: id,
    embedding: `[${Array(env.config.dims).fill(0.25).join(',')}]`,
    metadata: JSON.stringify({ c: classification, t: tenant }),
    classification,
    tenant,
    region: 'eu',
    subjects: '[]',
    policyVersion: null,
    sourceTopic: 'cdc',
    sourcePartition: 0,
    sourceOffset: '0',
    sourcePosition: null,
    sourceTimestampMs: Date.now() - 5000,
    topology: env.config.topology,
    topologyVersion: env.config.version,
    chunker: 'fixed',
    embeddingModel: 'm',
    emittedAtMs: Date.now(),
    chunkTopic: env.config.topic,
    chunkPartition: 0,
    chunkOffset: offset,
  }
}

async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.match(error.message, pattern)
    return true
  })
}

async function visible(client: pg.Client, env: SinkEnv): Promise<string[]> {
  const result = await client.query<{ chunk_id: string }>(
    `SELECT chunk_id FROM ${env.config.names.view} ORDER BY chunk_id`,
  )
  return result.rows.map((r) => r.chunk_id)
}

test('migrations: idempotent and versioned; dims are fixed per version; a new version serves only once activated', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const again = await migrate(env.owner, env.config)
  assert.deepEqual(again, { applied: [], createdVersion: false, activated: false })
  const applied = await env.admin.query(`SELECT version FROM ${env.config.names.migrationsTable} ORDER BY version`)
  assert.deepEqual(
    applied.rows.map((r) => r.version),
    MIGRATIONS.map((m) => m.version),
  )

  const wrongDims = resolveSinkConfig({ ...inputOf(env), dims: 8 })
  await assert.rejects(
    migrate(env.owner, wrongDims),
    (error: Error & { code?: string; problems?: { path: string }[] }) => {
      assert.equal(error.code, 'RS_CONFIG_INVALID')
      assert.equal(error.problems![0].path, '/sink/dims')
      return true
    },
  )

  await assert.rejects(
    migrate(env.owner, resolveSinkConfig({ ...inputOf(env), hnsw: { m: 24 } })),
    /\/sink\/hnsw: .*m=16, ef_construction=64/,
  )

  // Indexes as configured: HNSW (cosine), btree on entity, GIN on metadata.
  const indexes = await env.admin.query<{ indexdef: string }>(
    `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`,
    [env.config.names.schema, env.config.names.chunkTableName],
  )
  const defs = indexes.rows.map((r) => r.indexdef).join('\n')
  assert.match(defs, /USING hnsw \(embedding vector_cosine_ops\) WITH \(m='16', ef_construction='64'\)/)
  assert.match(defs, /USING btree \(entity_type, entity_key\)/)
  assert.match(defs, /USING gin \(metadata jsonb_path_ops\)/)
  const rls = await env.admin.query(
    `SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass`,
    [env.config.names.chunkTable],
  )
  assert.deepEqual(rls.rows[0], { relrowsecurity: true, relforcerowsecurity: true })
  const views = await env.admin.query(
    `SELECT c.relname, c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 ORDER BY 1`,
    [env.config.names.viewSchema],
  )
  for (const v of views.rows)
    assert.deepEqual(v.reloptions, ['security_invoker=true'], `${v.relname} is security_invoker`)

  // v2: its own table (other HNSW settings), the view stays on v1 until activated.
  const v2 = resolveSinkConfig({ ...inputOf(env), version: 'v2', hnsw: { m: 8, efConstruction: 32 } })
  assert.deepEqual(await migrate(env.owner, v2), { applied: [], createdVersion: true, activated: false })
  const sink = await connect(t, env.sinkUrl)
  const token = randomUUID()
  await claimPartitions(sink, v2.names, 'v2-topic', [{ partition: 0, initial: 0n, ownerToken: token }])
  const v2env = { ...env, config: v2 }
  await new BatchWriter(v2.names, 'test').write(
    sink,
    buildBatch(
      'v2-topic',
      [{ partition: 0, expected: 0n, next: 1n, ownerToken: token }],
      [{ kind: 'upsert', row: row(v2env, 'only-in-v2', 'public', 'acme', 0n) }],
    ),
  )
  const viewRows = async () =>
    (await env.admin.query(`SELECT chunk_id FROM ${env.config.names.view}`)).rows.map((r) => r.chunk_id)
  assert.deepEqual(await viewRows(), [])
  await activateVersion(env.owner, v2)
  assert.deepEqual(await viewRows(), ['only-in-v2'])
  const active = await env.admin.query(`SELECT version FROM ${env.config.names.versionsTable} WHERE active`)
  assert.deepEqual(active.rows, [{ version: 'v2' }])
})

function inputOf(env: SinkEnv) {
  const n = env.config.names
  return {
    topology: env.config.topology,
    version: env.config.version,
    topic: env.config.topic,
    dims: env.config.dims,
    schema: n.schema,
    viewSchema: n.viewSchema,
    ownerRole: n.ownerRole,
    sinkRole: n.sinkRole,
  }
}

test('RLS matrix: each analyst role sees exactly its classifications and tenants; SET widens nothing; views do not bypass RLS; the sink cannot read audit or alter policies', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const { config } = env
  const n = config.names
  const analysts = {
    internalAcme: `rs_a1_${env.suffix}`,
    publicInternalGlobex: `rs_a2_${env.suffix}`,
    everything: `rs_a3_${env.suffix}`,
    nothing: `rs_a4_${env.suffix}`,
    untenanted: `rs_a5_${env.suffix}`,
  }
  await createRoles(t, env.admin, Object.values(analysts))
  await grantAnalyst(env.owner, config, analysts.internalAcme, { classifications: ['internal'], tenants: ['acme'] })
  await grantAnalyst(env.owner, config, analysts.publicInternalGlobex, {
    classifications: ['public', 'internal'],
    tenants: ['globex'],
  })
  await grantAnalyst(env.owner, config, analysts.everything, { classifications: ['*'], tenants: ['*'] })
  await grantAnalyst(env.owner, config, analysts.nothing, { classifications: [], tenants: [] })
  await grantAnalyst(env.owner, config, analysts.untenanted, { classifications: ['public', ''], tenants: [''] })

  const classifications = ['public', 'internal', 'restricted', null]
  const tenants = ['acme', 'globex', null]
  const rows: ChunkRow[] = []
  let offset = 0n
  for (const c of classifications)
    for (const tn of tenants) rows.push(row(env, `${c ?? 'none'}/${tn ?? 'none'}`, c, tn, offset++))
  const sink = await connect(t, env.sinkUrl)
  const token = randomUUID()
  await claimPartitions(sink, n, config.topic, [{ partition: 0, initial: 0n, ownerToken: token }])
  const outcome = await new BatchWriter(n, 'test').write(
    sink,
    buildBatch(
      config.topic,
      [{ partition: 0, expected: 0n, next: offset, ownerToken: token }],
      rows.map((r) => ({ kind: 'upsert' as const, row: r })),
    ),
  )
  assert.equal(outcome.status, 'committed')

  const all = rows.map((r) => r.chunkId).sort()
  const expectations: Record<string, string[]> = {
    [analysts.internalAcme]: ['internal/acme'],
    [analysts.publicInternalGlobex]: ['internal/globex', 'public/globex'],
    [analysts.everything]: all,
    [analysts.nothing]: [],
    [analysts.untenanted]: ['none/none', 'public/none'],
  }
  for (const [role, expected] of Object.entries(expectations)) {
    const client = await connect(t, roleUrl(role))
    assert.deepEqual(await visible(client, env), expected, `${role} sees exactly its rows`)
    const fresh = await client.query(`SELECT coalesce(sum(chunks), 0)::int AS n FROM ${n.freshnessView}`)
    assert.equal(fresh.rows[0].n, expected.length, `${role}: the freshness view is filtered too`)
    // No setting an analyst can SET widens access.
    for (const setting of [
      'ragstream.tenant',
      'ragstream.classification',
      'app.tenant',
      'app.current_tenant',
      'request.jwt.claims',
    ]) {
      await client.query(`SELECT set_config($1, $2, false)`, [setting, 'globex'])
      assert.deepEqual(await visible(client, env), expected, `${role} after SET ${setting}`)
    }
    await client.query(`SET search_path = ${n.viewSchema}, public`)
    assert.deepEqual(await visible(client, env), expected)
    await client.query('SET row_security = off')
    // PostgreSQL either refuses the query (RLS would apply) or still filters: never more rows.
    const withoutRls = await visible(client, env).catch((error: Error) => error.message)
    if (typeof withoutRls === 'string') assert.match(withoutRls, /row-level security/)
    else assert.deepEqual(withoutRls, expected, `${role} with row_security = off`)
    await client.query('RESET row_security')
    await rejects(
      client.query(
        `SET ROLE ${JSON.stringify(role === analysts.everything ? analysts.internalAcme : analysts.everything)}`,
      ),
      /permission denied/,
    )
    await rejects(client.query(`SET ROLE ${JSON.stringify(n.ownerRole)}`), /permission denied/)
    await rejects(client.query(`SET SESSION AUTHORIZATION ${JSON.stringify(n.ownerRole)}`), /permission denied/)
    // Views only: the tables' schema is closed to analysts, and so are audit and offsets.
    await rejects(client.query(`SELECT * FROM ${n.chunkTable}`), /permission denied for schema/)
    await rejects(client.query(`SELECT * FROM ${n.auditTable}`), /permission denied/)
    await rejects(
      client.query(`INSERT INTO ${n.grantsTable} VALUES (current_user, 'tenant', '*')`),
      /permission denied/,
    )
    await rejects(client.query(`SELECT * FROM ${n.grantsTable}`), /permission denied/)
  }

  // The sink role: DML only, no superuser, no BYPASSRLS, not the owner; audit is write-only for it.
  const attrs = await env.admin.query(`SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1`, [n.sinkRole])
  assert.deepEqual(attrs.rows[0], { rolsuper: false, rolbypassrls: false })
  const tableOwner = await env.admin.query(
    `SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = $2`,
    [n.schema, n.chunkTableName],
  )
  assert.equal(tableOwner.rows[0].tableowner, n.ownerRole)
  await rejects(sink.query(`SELECT * FROM ${n.auditTable}`), /permission denied/)
  await rejects(sink.query(`SELECT count(*) FROM ${n.grantsTable}`), /permission denied/)
  await rejects(sink.query(`ALTER TABLE ${n.chunkTable} DISABLE ROW LEVEL SECURITY`), /must be owner/)
  await rejects(sink.query(`ALTER TABLE ${n.chunkTable} NO FORCE ROW LEVEL SECURITY`), /must be owner/)
  await rejects(sink.query(`DROP POLICY analyst_reads ON ${n.chunkTable}`), /must be owner/)
  await rejects(sink.query(`CREATE POLICY widen ON ${n.chunkTable} FOR SELECT USING (true)`), /must be owner/)
  await rejects(sink.query(`CREATE OR REPLACE VIEW ${n.view} AS SELECT 1`), /permission denied|must be owner/)
  await rejects(sink.query(`CREATE TABLE ${n.schema}.sneaky (x int)`), /permission denied/)
})

test('migration 8: chunk tables made before it gain source_appended_at (last, so tenant copies keep one row shape), the views too; old rows keep NULL', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const n = env.config.names
  // Back to the shape before migration 8: no column, views without it, migration not recorded.
  const columns = (
    await env.admin.query<{ name: string }>(
      `SELECT attname AS name FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [n.chunkTable],
    )
  ).rows.map((r) => r.name)
  assert.equal(columns.at(-1), 'source_appended_at', 'a new table has it last')
  const before = columns.slice(0, -1)
  await env.owner.query(`
    DROP VIEW ${n.freshnessView}; DROP VIEW ${n.view};
    ALTER TABLE ${n.chunkTable} DROP COLUMN source_appended_at;
    CREATE VIEW ${n.view} WITH (security_invoker = true) AS SELECT ${before.join(', ')} FROM ${n.chunkTable};
    DELETE FROM ${n.migrationsTable} WHERE version = 8;`)
  const sink = await connect(t, env.sinkUrl)
  const token = randomUUID()
  await claimPartitions(sink, n, env.config.topic, [{ partition: 0, initial: 0n, ownerToken: token }])
  // A row of the old shape (written as the old writer did, without the column).
  await env.owner.query(`ALTER TABLE ${n.chunkTable} NO FORCE ROW LEVEL SECURITY`)
  await env.owner.query(
    `INSERT INTO ${n.chunkTable} (${before.join(', ')}) SELECT ${before.join(', ')} FROM json_populate_record(NULL::${n.chunkTable}, $1)`,
    [
      JSON.stringify({
        chunk_id: 'old',
        entity_type: 'ticket',
        entity_key: 'old',
        chunk_index: 0,
        content: 'old',
        content_hash: 'old',
        embedding: `[${Array(env.config.dims).fill(0.25).join(',')}]`,
        metadata: {},
        subjects: [],
        source_topic: 'cdc',
        source_partition: 0,
        source_offset: 0,
        source_ts: new Date(Date.now() - 5000).toISOString(),
        topology: env.config.topology,
        topology_version: env.config.version,
        chunker: 'fixed',
        embedding_model: 'm',
        emitted_at: new Date().toISOString(),
        chunk_topic: env.config.topic,
        chunk_partition: 0,
        chunk_offset: 0,
        visible_at: new Date().toISOString(),
        written_by: 'old',
      }),
    ],
  )
  await env.owner.query(`ALTER TABLE ${n.chunkTable} FORCE ROW LEVEL SECURITY`)
  const { applied } = await migrate(env.owner, env.config)
  assert.deepEqual(applied, [8])
  const after = await env.admin.query<{ name: string }>(
    `SELECT attname AS name FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [n.view],
  )
  assert.equal(after.rows.at(-1)?.name, 'source_appended_at', 'the view has it')
  const split = await env.admin.query(
    `SELECT split_chunks_5m, ragstream_p99_5m, capture_p99_5m FROM ${n.freshnessView}`,
  )
  assert.deepEqual(
    split.fields.map((f) => f.name),
    ['split_chunks_5m', 'ragstream_p99_5m', 'capture_p99_5m'],
  )
  // The writer fills it for rows that know it; the old row keeps NULL and the split skips it.
  const appendedAt = Date.now() - 1000
  await new BatchWriter(n, 'test').write(
    sink,
    buildBatch(
      env.config.topic,
      [{ partition: 0, expected: 0n, next: 2n, ownerToken: token }],
      [{ kind: 'upsert', row: { ...row(env, 'new', 'public', 'acme', 1n), sourceAppendedAtMs: appendedAt } }],
    ),
  )
  const rows = await env.admin.query<{ chunk_id: string; appended_ms: number | null }>(
    `SELECT chunk_id, extract(epoch FROM source_appended_at) * 1000 AS appended_ms FROM ${n.chunkTable} ORDER BY chunk_id`,
  )
  assert.deepEqual(
    rows.rows.map((r) => [r.chunk_id, r.appended_ms === null ? null : Math.round(Number(r.appended_ms))]),
    [
      ['new', appendedAt],
      ['old', null],
    ],
  )
  const view = await env.admin.query<{ chunks_5m: string; split_chunks_5m: string }>(
    `SELECT chunks_5m, split_chunks_5m FROM ${n.freshnessView}`,
  )
  assert.deepEqual([Number(view.rows[0].chunks_5m), Number(view.rows[0].split_chunks_5m)], [2, 1])
  assert.deepEqual(await migrate(env.owner, env.config), { applied: [], createdVersion: false, activated: false })
})
