// Analyst grants are scoped to a topology (and optionally a version): a grant on one topology changes
// nothing on another, --migrate grants a new table only to roles granted on its topology, and roles
// row-level security does not bind (PUBLIC, superusers, BYPASSRLS, group roles) are refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { PassThrough } from 'node:stream'
import type pg from 'pg'
import { activateVersion, grantAnalyst, migrate } from '../../src/sink/migrations.ts'
import { resolveSinkConfig, type SinkConfig } from '../../src/sink/config.ts'
import { BatchWriter, buildBatch, claimPartitions } from '../../src/sink/batch-writer.ts'
import type { ChunkRow } from '../../src/sink/chunk-codec.ts'
import { ConfigError } from '../../src/errors.ts'
import { main } from '../../src/cli/main.ts'
import { connect, createRoles, createSinkEnv, roleUrl, type SinkEnv } from './support.ts'
import { quoteIdent } from '../../src/sink/identifiers.ts'

function row(config: SinkConfig, id: string, tenant: string, offset: bigint): ChunkRow {
  return {
    chunkId: id,
    entityType: 'ticket',
    entityKey: id,
    chunkIndex: 0,
    content: id,
    contentHash: id,
    embedding: `[${Array(config.dims).fill(0.25).join(',')}]`,
    metadata: '{}',
    classification: 'internal',
    tenant,
    region: 'eu',
    subjects: '[]',
    policyVersion: null,
    sourceTopic: 'cdc',
    sourcePartition: 0,
    sourceOffset: '0',
    sourcePosition: null,
    sourceTimestampMs: Date.now() - 5000,
    topology: config.topology,
    topologyVersion: config.version,
    chunker: 'fixed',
    embeddingModel: 'm',
    emittedAtMs: Date.now(),
    chunkTopic: config.topic,
    chunkPartition: 0,
    chunkOffset: offset,
  }
}

/** A second topology (or version) in the same schemas, with the same owner and sink roles. */
function sibling(env: SinkEnv, topology: string, version = 'v1'): SinkConfig {
  const n = env.config.names
  return resolveSinkConfig({
    topology,
    version,
    topic: `rag.chunks.${topology}.${version}`,
    dims: env.config.dims,
    schema: n.schema,
    viewSchema: n.viewSchema,
    ownerRole: n.ownerRole,
    sinkRole: n.sinkRole,
  })
}

async function write(t: { after: (fn: () => Promise<void>) => void }, env: SinkEnv, config: SinkConfig): Promise<void> {
  const sink = await connect(t, env.sinkUrl)
  const token = randomUUID()
  await claimPartitions(sink, config.names, config.topic, [{ partition: 0, initial: 0n, ownerToken: token }])
  const rows = ['acme', 'globex'].map((tenant, i) =>
    row(config, `${config.topology}-${config.version}/${tenant}`, tenant, BigInt(i)),
  )
  const outcome = await new BatchWriter(config.names, 'test').write(
    sink,
    buildBatch(
      config.topic,
      [{ partition: 0, expected: 0n, next: 2n, ownerToken: token }],
      rows.map((r) => ({ kind: 'upsert' as const, row: r })),
    ),
  )
  assert.equal(outcome.status, 'committed')
}

async function sees(client: pg.Client, config: SinkConfig): Promise<string[] | string> {
  try {
    const result = await client.query<{ chunk_id: string }>(`SELECT chunk_id FROM ${config.names.view} ORDER BY 1`)
    return result.rows.map((r) => r.chunk_id)
  } catch (error) {
    return (error as Error).message
  }
}

test('grants: scoped to a topology and version; a grant on one topology never widens another; --migrate grants new tables only to that topology’s analysts', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const one = env.config
  const two = sibling(env, `${one.topology}-two`)
  await migrate(env.owner, two)
  await write(t, env, one)
  await write(t, env, two)
  const [onlyOne, both, onlyTwo, pinned] = ['a', 'b', 'c', 'd'].map((x) => `rs_g${x}_${env.suffix}`)
  await createRoles(t, env.admin, [onlyOne, both, onlyTwo, pinned])
  await grantAnalyst(env.owner, one, onlyOne, { classifications: ['*'], tenants: ['acme'] })
  await grantAnalyst(env.owner, one, both, { classifications: ['*'], tenants: ['acme'] })
  await grantAnalyst(env.owner, two, both, { classifications: ['*'], tenants: ['globex'] })
  await grantAnalyst(env.owner, two, onlyTwo, { classifications: ['*'], tenants: ['*'] })
  await grantAnalyst(env.owner, one, pinned, { classifications: ['*'], tenants: ['*'], version: 'v1' })

  const c = Object.fromEntries(
    await Promise.all([onlyOne, both, onlyTwo, pinned].map(async (r) => [r, await connect(t, roleUrl(r))])),
  )
  assert.deepEqual(await sees(c[onlyOne], one), [`${one.topology}-v1/acme`])
  assert.match(String(await sees(c[onlyOne], two)), /permission denied/, 'no grant on two: not even the view')
  // Granting globex on two did not give `both` globex on one (the old, global grant did).
  assert.deepEqual(await sees(c[both], one), [`${one.topology}-v1/acme`])
  assert.deepEqual(await sees(c[both], two), [`${two.topology}-v1/globex`])
  assert.deepEqual(await sees(c[onlyTwo], two), [`${two.topology}-v1/acme`, `${two.topology}-v1/globex`])
  assert.match(String(await sees(c[onlyTwo], one)), /permission denied/)

  // A new version of one: its analysts (every version) read it once active; two's analysts and the
  // role pinned to v1 get nothing from it.
  const oneV2 = sibling(env, one.topology, 'v2')
  await migrate(env.owner, oneV2)
  await write(t, env, oneV2)
  await activateVersion(env.owner, oneV2)
  assert.deepEqual(await sees(c[onlyOne], oneV2), [`${one.topology}-v2/acme`])
  assert.deepEqual(await sees(c[both], oneV2), [`${one.topology}-v2/acme`])
  const pinnedSees = await sees(c[pinned], oneV2)
  assert.ok(
    typeof pinnedSees === 'string' ? /permission denied/.test(pinnedSees) : pinnedSees.length === 0,
    String(pinnedSees),
  )
  const onV2 = await env.admin.query<{ grantee: string }>(
    `SELECT grantee FROM information_schema.role_table_grants WHERE table_schema = $1 AND table_name = $2 AND privilege_type = 'SELECT'`,
    [oneV2.names.schema, oneV2.names.chunkTableName],
  )
  const grantees = new Set(onV2.rows.map((r) => r.grantee))
  assert.ok(grantees.has(onlyOne) && grantees.has(both))
  assert.ok(!grantees.has(onlyTwo) && !grantees.has(pinned), `v2 granted only to one's analysts: ${[...grantees]}`)
})

test('grants: PUBLIC, superusers, BYPASSRLS roles, group (NOLOGIN) roles, missing roles and the owner/sink roles are refused; the CLI exits 78', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const [group, bypass] = [`rs_grp_${env.suffix}`, `rs_byp_${env.suffix}`]
  await env.admin.query(`CREATE ROLE ${quoteIdent(group)} NOLOGIN`)
  await env.admin.query(`CREATE ROLE ${quoteIdent(bypass)} LOGIN BYPASSRLS`)
  t.after(async () => {
    for (const r of [group, bypass])
      await env.admin.query(`DROP OWNED BY ${quoteIdent(r)}; DROP ROLE ${quoteIdent(r)}`).catch(() => {})
  })
  const cases: [string, RegExp][] = [
    ['public', /PUBLIC/],
    ['PUBLIC', /PUBLIC/],
    ['postgres', /superuser/],
    [bypass, /BYPASSRLS/],
    [group, /cannot log in/],
    [`rs_missing_${env.suffix}`, /does not exist/],
    [env.config.names.ownerRole, /owner or sink/],
    [env.config.names.sinkRole, /owner or sink/],
  ]
  for (const [role, message] of cases) {
    await assert.rejects(
      grantAnalyst(env.owner, env.config, role, { classifications: ['*'], tenants: ['*'] }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error))
        assert.equal(error.problems[0].path, '/analyst/role')
        assert.match(error.message, message)
        return true
      },
      role,
    )
  }
  const grants = await env.admin.query(`SELECT count(*)::int AS n FROM ${env.config.names.grantsTable}`)
  assert.equal(grants.rows[0].n, 0, 'nothing was granted')
  const err = new PassThrough()
  let stderr = ''
  err.on('data', (b: Buffer) => (stderr += b.toString()))
  const c = env.config
  const code = await main(
    [
      'sink',
      c.topology,
      '--dims',
      '4',
      '--schema',
      c.names.schema,
      '--view-schema',
      c.names.viewSchema,
      '--owner-role',
      c.names.ownerRole,
      '--sink-role',
      c.names.sinkRole,
      '--postgres-url',
      env.ownerUrl,
      '--grant',
      'public',
      '--classifications',
      '*',
      '--tenants',
      '*',
    ],
    {
      stdout: new PassThrough() as unknown as typeof process.stdout,
      stderr: err as unknown as typeof process.stderr,
      env: process.env,
    },
  )
  assert.equal(code, 78, stderr)
  assert.match(stderr, /RS_CONFIG_INVALID[\s\S]*PUBLIC/)
})

test('grants: migrating a database whose grants were global scopes each grant to every topology it covered, and rebuilds every table’s policy', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const one = env.config
  const two = sibling(env, `${one.topology}-two`)
  await migrate(env.owner, two)
  await write(t, env, one)
  await write(t, env, two)
  const analyst = `rs_legacy_${env.suffix}`
  await createRoles(t, env.admin, [analyst])
  await grantAnalyst(env.owner, one, analyst, { classifications: ['*'], tenants: ['acme'] })
  await grantAnalyst(env.owner, two, analyst, { classifications: ['*'], tenants: ['acme'] })
  // Back to the shape of migration 1: one global grant list, policies gone with the columns.
  const n = one.names
  await env.owner.query(`
    ALTER TABLE ${n.grantsTable} DROP CONSTRAINT analyst_grants_pkey;
    DELETE FROM ${n.grantsTable} WHERE topology <> $$${two.topology}$$;
    ALTER TABLE ${n.grantsTable} DROP COLUMN topology CASCADE, DROP COLUMN topology_version CASCADE;
    ALTER TABLE ${n.grantsTable} ADD PRIMARY KEY (role_name, dimension, value);
    DELETE FROM ${n.migrationsTable} WHERE version = 2;`)
  const { applied } = await migrate(env.owner, one)
  assert.deepEqual(applied, [2])
  const rows = await env.admin.query<{ topology: string }>(
    `SELECT DISTINCT topology FROM ${n.grantsTable} WHERE role_name = $1 ORDER BY 1`,
    [analyst],
  )
  assert.deepEqual(
    rows.rows.map((r) => r.topology),
    [one.topology, two.topology].sort(),
  )
  const client = await connect(t, roleUrl(analyst))
  assert.deepEqual(await sees(client, one), [`${one.topology}-v1/acme`])
  assert.deepEqual(await sees(client, two), [`${two.topology}-v1/acme`], 'the other topology’s policy was rebuilt too')
})
