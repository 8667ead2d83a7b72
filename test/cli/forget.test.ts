// `ragstream forget`: argument problems are listed without repeating the subject; the request it
// produces is Avro (schemas/deletion-request.avsc) keyed by subject, readable by an independent
// registry client. The --wait receipt is exercised end to end in test/governance/forget-e2e.test.ts.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { Writable } from 'node:stream'
import { Admin } from '@platformatic/kafka'
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import { main } from '../../src/cli/main.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd } from '../support/topic-offsets.ts'

async function run(argv: string[]) {
  let out = ''
  let err = ''
  const stdout = new Writable({
    write(chunk, _enc, done) {
      out += String(chunk)
      done()
    },
  })
  const stderr = new Writable({
    write(chunk, _enc, done) {
      err += String(chunk)
      done()
    },
  })
  const code = await main(argv, {
    stdout: stdout as unknown as typeof process.stdout,
    stderr: stderr as unknown as typeof process.stderr,
    env: {},
  })
  return { code, stdout: out, stderr: err }
}

test('forget: bad arguments exit 78 naming each field, never echoing the subject', async () => {
  const bad = await run(['forget', '--subject', 'anna@example.com', '--reason', ''])
  assert.equal(bad.code, 78)
  assert.match(bad.stderr, /\/subject: required: <type>:<id>/)
  assert.match(bad.stderr, /\/reason: required/)
  assert.doesNotMatch(bad.stderr, /anna@example\.com/)
  const noTopology = await run(['forget', '--subject', 'customer:42', '--reason', 'gdpr', '--wait'])
  assert.equal(noTopology.code, 78)
  assert.match(noTopology.stderr, /--topology: required with --wait/)
})

test('forget: produces one Avro deletion request keyed by the subject', { timeout: 60_000 }, async (t) => {
  const topic = uniqueName('governance.deletions')
  await createTopics(t, [topic], 3, [{ name: 'cleanup.policy', value: 'compact' }])
  t.after(() => deleteSubject(`${topic}-value`))
  const child = spawn(
    new URL('../../node_modules/.bin/node', import.meta.url).pathname,
    [
      'bin/ragstream.ts',
      'forget',
      '--subject',
      'customer:42',
      '--reason',
      'GDPR art. 17',
      '--requested-by',
      'dpo',
      '--request-id',
      'req-cli-1',
      '--deletions-topic',
      topic,
      '--json',
    ],
    {
      cwd: new URL('../../', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const code = await new Promise((resolve) => child.once('exit', resolve))
  assert.equal(code, 0, stderr)
  assert.equal(JSON.parse(stdout).requestId, 'req-cli-1')
  const admin = new Admin({ clientId: uniqueName('forget-cli'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => admin.close())
  const records = await readToEnd(admin, 3, [topic])
  assert.equal(records.length, 1)
  assert.equal(records[0].key?.toString(), 'customer:42')
  const request = await new SchemaRegistry({ host: endpoints.schemaRegistryUrl }).decode(records[0].value!)
  assert.deepEqual(
    { ...request, requested_at_ms: 0 },
    {
      request_id: 'req-cli-1',
      subject: 'customer:42',
      reason: 'GDPR art. 17',
      requested_by: 'dpo',
      requested_at_ms: 0,
      mode: 'FOREVER',
    },
  )
})

test('forget: a deletions topic that does not exist fails at once (RS_TOPIC_MISSING, exit 78), nothing produced', async () => {
  const topic = uniqueName('governance.missing-deletions')
  const started = Date.now()
  const result = await run(['forget', '--subject', 'customer:42', '--reason', 'gdpr', '--deletions-topic', topic])
  assert.equal(result.code, 78, result.stderr)
  assert.match(
    result.stderr,
    new RegExp(`RS_TOPIC_MISSING: the deletions topic ${topic.replaceAll('.', '\\.')} does not exist`),
  )
  assert.match(result.stderr, /hint: pass --deletions-topic/)
  assert.ok(Date.now() - started < 10_000, `failed fast (${Date.now() - started} ms)`)
  const admin = new Admin({ clientId: 'test-forget-missing', bootstrapBrokers: [...endpoints.kafkaBrokers] })
  try {
    assert.equal((await admin.listTopics()).includes(topic), false, 'not auto-created either')
  } finally {
    await admin.close()
  }
})
