// Tenant isolation mode: with row-level security alone, an analyst's EXPLAIN ANALYZE counts another
// tenant's hidden rows (the planner side channel docs/sql.md describes); with the tenant boundary as a
// GRANT, the analyst's plans never touch another tenant's rows, so there is nothing to count.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { PassThrough } from 'node:stream'
import { main } from '../../src/cli/main.ts'
import { grantAnalyst } from '../../src/sink/migrations.ts'
import { grantTenantAnalyst, isolateTenant } from '../../src/sink/tenant-isolation.ts'
import { BatchWriter, buildBatch, claimPartitions } from '../../src/sink/batch-writer.ts'
import type { ChunkRow, SinkEvent } from '../../src/sink/chunk-codec.ts'
import { connect, createRoles, createSinkEnv, roleUrl, type SinkEnv } from './support.ts'

function row(env: SinkEnv, id: string, tenant: string, classification: string, offset: bigint): ChunkRow {
  return {
    chunkId: id,
    entityType: 'ticket',
    entityKey: id,
    chunkIndex: 0,
    content: `text of ${id}`,
    contentHash: id,
    embedding: `[${Array(env.config.dims).fill(0.25).join(',')}]`,
    metadata: '{}',
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

/** Every actual row count of the plan, and every "Rows Removed by …" count. */
async function explain(client: pg.Client, sql: string): Promise<{ rows: number[]; removed: number[]; text: string }> {
  await client.query('SET enable_seqscan = off') // anyone may: it makes the index (leakproof) path certain
  const plan = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ${sql}`)
  const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n')
  return {
    text,
    rows: [...text.matchAll(/actual rows=(\d+)/g)].map((m) => Number(m[1])),
    removed: [...text.matchAll(/Rows Removed by [A-Za-z ]+: (\d+)/g)].map((m) => Number(m[1])),
  }
}

test('tenant isolation: a tenant analyst’s EXPLAIN ANALYZE counts no row of another tenant (RLS alone does); clearance inside the tenant stays RLS; the copy follows upserts, deletes and tenant moves', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const { config } = env
  const sink = await connect(t, env.sinkUrl)
  const token = randomUUID()
  await claimPartitions(sink, config.names, config.topic, [{ partition: 0, initial: 0n, ownerToken: token }])
  const writer = new BatchWriter(config.names, 'test')
  let offset = 0n
  let next = 0n
  const write = async (events: SinkEvent[]): Promise<void> => {
    const expected = next
    next += 1n
    const outcome = await writer.write(
      sink,
      buildBatch(config.topic, [{ partition: 0, expected, next, ownerToken: token }], events),
    )
    assert.equal(outcome.status, 'committed')
  }
  const up = (id: string, tenant: string, classification: string): SinkEvent => ({
    kind: 'upsert',
    row: row(env, id, tenant, classification, offset++),
  })
  await write([
    up('acme-1', 'acme', 'internal'),
    up('acme-secret', 'acme', 'restricted'),
    up('globex-secret', 'globex', 'restricted'),
    up('globex-2', 'globex', 'internal'),
  ])

  const [rlsOnly, isolated] = [`rs_rls_${env.suffix}`, `rs_iso_${env.suffix}`]
  await createRoles(t, env.admin, [rlsOnly, isolated])
  // RLS mode: acme, internal only — and yet the plan counts globex's hidden row.
  await grantAnalyst(env.owner, config, rlsOnly, { classifications: ['internal'], tenants: ['acme'] })
  const rls = await connect(t, roleUrl(rlsOnly))
  const probe = (view: string) =>
    `SELECT chunk_id FROM ${view} WHERE entity_type = 'ticket' AND entity_key = 'globex-secret'`
  const leak = await explain(rls, probe(config.names.view))
  assert.equal((await rls.query(probe(config.names.view))).rowCount, 0, 'RLS hides the row')
  assert.ok(
    leak.removed.some((n) => n > 0),
    `the documented side channel: RLS alone lets the plan count the hidden row\n${leak.text}`,
  )

  // Isolation mode: acme gets a table of its own; the analyst holds a grant on nothing else.
  const acme = await isolateTenant(env.owner, config, 'acme')
  await grantTenantAnalyst(env.owner, config, isolated, { tenant: 'acme', classifications: ['internal'] })
  const iso = await connect(t, roleUrl(isolated))
  const none = await explain(iso, probe(acme.view))
  assert.ok(
    none.rows.every((n) => n === 0) && none.removed.every((n) => n === 0),
    `no count of another tenant's rows\n${none.text}`,
  )
  for (const other of [
    config.names.view,
    config.names.chunkTable,
    `${config.names.viewSchema}."${config.topology}__globex"`,
  ])
    await assert.rejects(iso.query(`SELECT count(*) FROM ${other}`), /permission denied|does not exist/, other)
  const visible = async (): Promise<string[]> =>
    (await iso.query<{ chunk_id: string }>(`SELECT chunk_id FROM ${acme.view} ORDER BY 1`)).rows.map((r) => r.chunk_id)
  assert.deepEqual(await visible(), ['acme-1'], 'clearance inside the tenant is still RLS')

  // The sink keeps the copy in step: a new row, an update, a tombstone, and a row moving to globex.
  await write([up('acme-3', 'acme', 'internal'), up('acme-1', 'acme', 'internal')])
  assert.deepEqual(await visible(), ['acme-1', 'acme-3'])
  await write([{ kind: 'tombstone', chunkId: 'acme-3', partition: 0, offset: offset++ }])
  assert.deepEqual(await visible(), ['acme-1'])
  await write([up('acme-1', 'globex', 'internal')])
  assert.deepEqual(await visible(), [])
  const copy = await env.admin.query(`SELECT chunk_id, tenant FROM ${acme.table} ORDER BY 1`)
  assert.deepEqual(copy.rows, [{ chunk_id: 'acme-secret', tenant: 'acme' }])
})

test('tenant isolation from the CLI: sink --isolate-tenant, then --grant … --isolated', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const c = env.config
  const analyst = `rs_cli_${env.suffix}`
  await createRoles(t, env.admin, [analyst])
  const common = ['sink', c.topology, '--dims', '4', '--schema', c.names.schema, '--view-schema', c.names.viewSchema]
  const roles = ['--owner-role', c.names.ownerRole, '--sink-role', c.names.sinkRole, '--postgres-url', env.ownerUrl]
  const run = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = ''
    let err = ''
    const stdout = new PassThrough().on('data', (b: Buffer) => (out += b.toString()))
    const stderr = new PassThrough().on('data', (b: Buffer) => (err += b.toString()))
    const code = await main([...common, ...roles, ...args], {
      stdout: stdout as unknown as typeof process.stdout,
      stderr: stderr as unknown as typeof process.stderr,
      env: process.env,
    })
    return { code, out, err }
  }
  const isolated = await run(['--isolate-tenant', 'globex'])
  assert.equal(isolated.code, 0, isolated.err)
  assert.match(isolated.out, /"event":"tenant-isolated"/)
  const refused = await run(['--grant', analyst, '--tenants', 'globex,acme', '--classifications', '*', '--isolated'])
  assert.equal(refused.code, 78, 'one tenant only')
  const granted = await run(['--grant', analyst, '--tenants', 'globex', '--classifications', '*', '--isolated'])
  assert.equal(granted.code, 0, granted.err)
  const client = await connect(t, roleUrl(analyst))
  assert.equal(
    (await client.query(`SELECT count(*)::int AS n FROM ${c.names.viewSchema}."${c.topology}__globex"`)).rows[0].n,
    0,
  )
  await assert.rejects(client.query(`SELECT count(*) FROM ${c.names.view}`), /permission denied/)
})
