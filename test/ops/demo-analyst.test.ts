// The demo grants its analyst every tenant and classification of the demo topology, so it refuses an
// existing role it did not create — before it creates a topic or starts anything — with exit 78.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { Admin } from '@platformatic/kafka'
import { main } from '../../src/cli/main.ts'
import { endpoints } from '../support/stack.ts'
import { connect, createRoles, ADMIN_URL } from '../sink/support.ts'
import { opsEnv } from './support.ts'

test('demo: an existing role it did not create is refused with exit 78 before the demo runs', async (t) => {
  const o = opsEnv(t)
  const admin = await connect(t, ADMIN_URL)
  const existing = `rs_someone_${o.suffix}`
  await createRoles(t, admin, [existing])
  const err = new PassThrough()
  let stderr = ''
  err.on('data', (b: Buffer) => (stderr += b.toString()))
  const started = Date.now()
  const code = await main(['demo', '--name', o.name, '--sql-topology', o.sqlTopology, '--analyst-role', existing], {
    stdout: new PassThrough() as unknown as typeof process.stdout,
    stderr: err as unknown as typeof process.stderr,
    env: o.env,
  })
  assert.equal(code, 78, stderr)
  assert.match(stderr, /RS_CONFIG_INVALID[\s\S]*--analyst-role[\s\S]*not created by the demo/)
  assert.ok(Date.now() - started < 15_000, 'refused up front')
  // Nothing ran: no topic of this demo name, no grant to the role.
  const kafka = new Admin({ clientId: `test-${o.suffix}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
  try {
    assert.deepEqual(
      (await kafka.listTopics()).filter((name) => name.startsWith(o.name)),
      [],
    )
  } finally {
    await kafka.close()
  }
  const grants = await admin.query(
    `SELECT count(*)::int AS n FROM information_schema.role_table_grants WHERE grantee = $1`,
    [existing],
  )
  assert.equal(grants.rows[0].n, 0)
})
