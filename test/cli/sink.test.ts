// `ragstream sink` from the command line: hostile names rejected naming the field, --migrate as
// the owner only, and the sink refusing to run as a superuser or the owner.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { main } from '../../src/cli/main.ts'
import { ADMIN_URL, createSinkEnv } from '../sink/support.ts'

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough()
  const err = new PassThrough()
  let stdout = ''
  let stderr = ''
  out.on('data', (c: Buffer) => (stdout += c.toString()))
  err.on('data', (c: Buffer) => (stderr += c.toString()))
  const code = await main(argv, {
    stdout: out as unknown as typeof process.stdout,
    stderr: err as unknown as typeof process.stderr,
    env: process.env,
  })
  return { code, stdout, stderr }
}

test("cli sink: hostile names are rejected with RS_IDENTIFIER_INVALID naming the option's field, before any connection", async () => {
  const cases: [string[], string][] = [
    [['sink', 'x"; DROP SCHEMA public CASCADE; --', '--dims', '4'], '/sink/topology'],
    [['sink', 'support', '--dims', '4', '--schema', 'ragstream;drop'], '/sink/schema'],
    [['sink', 'support', '--dims', '4', '--view-schema', 'vüe'], '/sink/viewSchema'],
    [['sink', 'support', '--dims', '4', '--sink-role', 's'.repeat(64)], '/sink/sinkRole'],
    [['sink', 'support', '--dims', '4', '--topology-version', "v1'"], '/sink/version'],
  ]
  for (const [argv, field] of cases) {
    const { code, stderr } = await run(argv)
    assert.notEqual(code, 0, argv.join(' '))
    assert.match(stderr, new RegExp(`^error RS_IDENTIFIER_INVALID: ${field.replaceAll('/', '\\/')}:`), argv.join(' '))
  }
})

test('cli sink: --migrate runs as the owner role only; the sink refuses a superuser or owner connection', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const n = env.config.names
  const common = [
    'sink',
    env.config.topology,
    '--dims',
    '4',
    '--schema',
    n.schema,
    '--view-schema',
    n.viewSchema,
    '--owner-role',
    n.ownerRole,
    '--sink-role',
    n.sinkRole,
    '--topic',
    env.config.topic,
  ]
  const migrated = await run([...common, '--migrate', '--postgres-url', env.ownerUrl])
  assert.equal(migrated.code, 0, migrated.stderr)
  assert.deepEqual(JSON.parse(migrated.stdout), {
    event: 'migrated',
    table: n.chunkTable,
    applied: [],
    createdVersion: false,
    activated: false,
  })
  const hostileGrant = await run([
    ...common,
    '--grant',
    'analyst"; DROP ROLE x; --',
    '--tenants',
    '*',
    '--postgres-url',
    env.ownerUrl,
  ])
  assert.notEqual(hostileGrant.code, 0)
  assert.match(hostileGrant.stderr, /^error RS_IDENTIFIER_INVALID: \/analyst\/role:/)
  const asSuperuser = await run([...common, '--migrate', '--postgres-url', ADMIN_URL])
  assert.equal(asSuperuser.code, 78)
  assert.match(asSuperuser.stderr, /must connect as role/)
  for (const url of [ADMIN_URL, env.ownerUrl]) {
    const refused = await run([...common, '--postgres-url', url])
    assert.equal(refused.code, 78, refused.stderr)
    assert.match(refused.stderr, /the sink must connect as role .*not a superuser, no BYPASSRLS/)
  }
})

test('cli sink: --name and --sql-topology name a second copy of an app (chunk topic, group, table), as replay, status and promote do', async () => {
  const { loadConfig } = await import('../../src/config/file.ts')
  const { sinkConfigForApp } = await import('../../src/cli/commands/sink.ts')
  const values = { name: 'copilot-b', 'sql-topology': 'copilot_b', version: 'v2', prefix: 'tenant-b' }
  const result = await sinkConfigForApp('support-copilot', values, loadConfig({ env: process.env }))
  assert.ok(result)
  assert.equal(result.deployment.applicationId, 'copilot-b-v2')
  assert.equal(result.sink.topic, 'rag.chunks.copilot-b.v2')
  assert.equal(result.sink.groupId, 'ragstream-sink.copilot_b.v2')
  assert.match(result.sink.names.chunkTable, /chunks_copilot_b_v2/)
  assert.equal(result.deployment.deletionsTopic, 'tenant-b.governance.deletions')
})

test('cli sink --writers: not a positive integer is refused naming --writers; a writer that fails stops the others and the command exits with its error', async (t) => {
  for (const bad of ['0', '-2', '1.5', 'three']) {
    const { code, stderr } = await run(['sink', 'support', '--dims', '4', '--writers', bad])
    assert.equal(code, 78, `--writers ${bad}: ${stderr}`)
    assert.match(stderr, /--writers/, `--writers ${bad}`)
  }
  const env = await createSinkEnv(t, { dims: 4, partitions: 2 })
  const n = env.config.names
  // Every writer finds a 4-dimension table where 5 are configured: the first failure ends the command.
  const mismatch = await run([
    ...['sink', env.config.topology, '--dims', '5', '--topic', env.config.topic, '--schema', n.schema],
    ...['--view-schema', n.viewSchema, '--owner-role', n.ownerRole, '--sink-role', n.sinkRole],
    ...['--postgres-url', env.sinkUrl, '--writers', '3'],
  ])
  assert.equal(mismatch.code, 78, mismatch.stderr)
  assert.match(mismatch.stderr, /has 4 dimensions, the configuration says 5/)
  assert.equal(mismatch.stderr.match(/has 4 dimensions/g)?.length, 1, 'one error, not one per writer')
})
