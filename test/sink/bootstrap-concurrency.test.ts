// Role and database-ACL changes run side by side: sinks bootstrapping while a demo creates its analyst
// all GRANT CONNECT on the same database row. Unserialised, one of them failed with Postgres's "tuple
// concurrently updated" (a CI run's sink crash test died of it in its set-up).
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import pg from 'pg'
import { bootstrapDatabase, ensureLoginRole } from '../../src/sink/migrations.ts'
import { resolveSinkConfig } from '../../src/sink/config.ts'
import { ADMIN_URL, connect } from './support.ts'

test('concurrent bootstraps and login-role creations all succeed, and each role may connect', async (t) => {
  const rounds = 8
  const suffixes = Array.from({ length: rounds }, () => randomUUID().replaceAll('-', '').slice(0, 10))
  const names = suffixes.map(
    (suffix) =>
      resolveSinkConfig({
        topology: `t${suffix}`,
        version: 'v1',
        topic: `rag.chunks.t${suffix}`,
        schema: `rs_${suffix}`,
        viewSchema: `rv_${suffix}`,
        ownerRole: `rs_owner_${suffix}`,
        sinkRole: `rs_sink_${suffix}`,
        dims: 4,
      }).names,
  )
  const analysts = suffixes.map((suffix) => `rs_analyst_${suffix}`)
  // Registered before the clients (after hooks run in order), so it cleans up while they are open.
  t.after(async () => {
    const admin = new pg.Client({ connectionString: ADMIN_URL })
    await admin.connect()
    for (const n of names) {
      await admin.query(`DROP SCHEMA IF EXISTS ${n.schema} CASCADE`).catch(() => {})
      await admin.query(`DROP SCHEMA IF EXISTS ${n.viewSchema} CASCADE`).catch(() => {})
    }
    const db = (await admin.query<{ db: string }>('SELECT current_database() AS db')).rows[0].db
    for (const role of [
      ...analysts,
      `rs_outsider_${suffixes[0]}`,
      ...names.flatMap((n) => [n.ownerRole, n.sinkRole]),
    ]) {
      await admin.query(`REVOKE CONNECT ON DATABASE "${db}" FROM ${role}`).catch(() => {})
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {})
    }
    await admin.end()
  })
  const clients = await Promise.all(Array.from({ length: 2 * rounds }, () => connect(t, ADMIN_URL)))
  const admin = clients[0]

  // An administrator's own ACL changes on the same database, outside ragstream's lock, meanwhile (as
  // other tests' cleanups do: DROP OWNED BY rewrites the database ACL). Their own failures do not count.
  const outsider = `rs_outsider_${suffixes[0]}`
  analysts.push(outsider)
  await admin.query(`CREATE ROLE ${outsider}`)
  const dbName = (await admin.query<{ db: string }>('SELECT current_database() AS db')).rows[0].db
  const outside = await connect(t, ADMIN_URL)
  let churning = true
  const churn = (async () => {
    while (churning) {
      await outside.query(`GRANT CONNECT ON DATABASE "${dbName}" TO ${outsider}`).catch(() => {})
      await outside.query(`REVOKE CONNECT ON DATABASE "${dbName}" FROM ${outsider}`).catch(() => {})
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  })()
  const results = await Promise.allSettled(
    names.flatMap((n, i) => [
      bootstrapDatabase(clients[2 * i], n),
      ensureLoginRole(clients[2 * i + 1], analysts[i], 'created by a test'),
    ]),
  )
  churning = false
  await churn
  analysts.pop()
  const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))
  assert.deepEqual(failed, [])

  const db = (await admin.query<{ db: string }>('SELECT current_database() AS db')).rows[0].db
  for (const role of [...analysts, ...names.flatMap((n) => [n.ownerRole, n.sinkRole])]) {
    const granted = await admin.query<{ ok: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a JOIN pg_roles r ON r.oid = a.grantee
        WHERE d.datname = $1 AND r.rolname = $2 AND a.privilege_type = 'CONNECT') AS ok`,
      [db, role],
    )
    assert.equal(granted.rows[0].ok, true, `${role} has CONNECT on ${db}`)
  }
  const comment = await admin.query<{ c: string }>(
    `SELECT shobj_description(oid, 'pg_authid') AS c FROM pg_roles WHERE rolname = $1`,
    [analysts[0]],
  )
  assert.equal(comment.rows[0].c, 'created by a test')
})
