// `ragstream replay` and `promote` arguments: wrong ones fail before any connection, naming the option.
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { main } from '../../src/cli/main.ts'

async function cli(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = ''
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk, _e, done) {
        append(String(chunk))
        done()
      },
    })
  const code = await main(argv, {
    stdout: sink(() => {}) as unknown as typeof process.stdout,
    stderr: sink((s) => (stderr += s)) as unknown as typeof process.stderr,
    env: {},
  })
  return { code, stderr }
}

test('replay: a version, a real timestamp and a known provider are required, each named', async () => {
  const missing = await cli(['replay', 'support-copilot', '--from', 'yesterday', '--embedding', 'cohere'])
  assert.equal(missing.code, 78)
  assert.match(missing.stderr, /--to-version: required/)
  assert.match(missing.stderr, /--from: expected earliest or an ISO 8601 timestamp/)
  assert.match(missing.stderr, /--embedding: expected hashing, local or openai/)
  const model = await cli(['replay', 'support-copilot', '--to-version', 'v2', '--embedding', 'openai'])
  assert.match(model.stderr, /--embedding-model: required with --embedding openai/)
  const local = await cli([
    'replay',
    'support-copilot',
    '--to-version',
    'v2',
    '--embedding',
    'local',
    '--embedding-model',
    'gpt-9',
  ])
  assert.equal(local.code, 78)
  assert.match(local.stderr, /--embedding-model: expected one of all-minilm-l6-v2-int8, /)
  const unknown = await cli(['replay', 'fraud-graph', '--to-version', 'v2', '--from', '2026-11-01T00:00:00Z'])
  assert.equal(unknown.code, 78)
  assert.match(
    unknown.stderr,
    /<app>: "fraud-graph" is neither a file nor a known app \(support-copilot, knowledge-base\)/,
  )
  const version = await cli(['replay', 'support-copilot', '--to-version', 'V2; DROP'])
  assert.match(version.stderr, /--to-version: expected a version like v2/)
})

test('promote: a topology and a version are required', async () => {
  const { code, stderr } = await cli(['promote', 'support-copilot'])
  assert.equal(code, 78)
  assert.match(stderr, /<topology> <version>: a topology name and a version are required/)
})

test(
  'replay --from <time>: a new group starts at the first record at or after it (here: none, so nothing is replayed)',
  { timeout: 60_000 },
  async (t) => {
    const { checkKafka, checkPostgres } = await import('../../src/config/services.ts')
    const { endpoints } = await import('../support/stack.ts')
    const { opsEnv } = await import('../ops/support.ts')
    const { generate } = await import('../../src/generator/generator.ts')
    const { Admin } = await import('@platformatic/kafka')
    await Promise.all([checkKafka(endpoints), checkPostgres(endpoints.postgresUrl)])
    const o = opsEnv(t)
    const prefix = `${o.name}.src`
    await generate({
      brokers: endpoints.kafkaBrokers,
      seed: 3,
      server: prefix,
      withSchema: false,
      backfill: 20,
      rate: 0,
      createTopics: { partitions: 2 },
    })
    const future = new Date(Date.now() + 3_600_000).toISOString()
    let stdout = ''
    let stderr = ''
    const sink = (append: (s: string) => void) =>
      new Writable({
        write(chunk, _e, done) {
          append(String(chunk))
          done()
        },
      })
    const code = await main(
      [
        'replay',
        'support-copilot',
        '--to-version',
        'v1',
        '--from',
        future,
        '--prefix',
        prefix,
        '--name',
        o.name,
        '--sql-topology',
        o.sqlTopology,
      ],
      {
        stdout: sink((s) => (stdout += s)) as unknown as typeof process.stdout,
        stderr: sink((s) => (stderr += s)) as unknown as typeof process.stderr,
        env: o.env,
      },
    )
    assert.equal(code, 0, `${stdout}\n${stderr}`)
    assert.match(stdout, new RegExp(`from ${future.replaceAll('.', '\\.')}`))
    assert.match(stdout, /caught up in/)
    assert.match(stdout, /@v1: 0 rows in .* from 0 records/)
    assert.match(stdout, /next: ragstream promote support-copilot v1/)

    // The group was placed at the end of every source partition before the processor started.
    const admin = new Admin({ clientId: `replay-from-${o.suffix}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
    t.after(() => admin.close())
    const [group] = await admin.listConsumerGroupOffsets({ groups: [o.name] })
    const tickets = group.topics.find((topic) => topic.name === `${prefix}.public.tickets`)
    assert.ok(
      tickets && tickets.partitions.reduce((sum, p) => sum + Number(p.committedOffset), 0) >= 20,
      JSON.stringify(group, (_, v) => (typeof v === 'bigint' ? String(v) : v)),
    )
  },
)
