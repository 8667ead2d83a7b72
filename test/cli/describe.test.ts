// `ragstream describe <app> [--format text|json|mermaid]`
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { main } from '../../src/cli/main.ts'
import topology from '../../topologies/support-tickets.ts'

const file = fileURLToPath(new URL('../../topologies/support-tickets.ts', import.meta.url))

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = new Writable({
    write(chunk, _enc, done) {
      stdout += String(chunk)
      done()
    },
  })
  const err = new Writable({
    write(chunk, _enc, done) {
      stderr += String(chunk)
      done()
    },
  })
  const code = await main(argv, {
    stdout: out as unknown as typeof process.stdout,
    stderr: err as unknown as typeof process.stderr,
    env: {},
  })
  return { code, stdout, stderr }
}

test('describe prints the Kafka-style text by default', async () => {
  const { code, stdout } = await run(['describe', file])
  assert.equal(code, 0)
  assert.equal(stdout, topology.describe('text'))
})

test('describe --format json prints the description as JSON, with the internal topics and their config', async () => {
  const { code, stdout } = await run(['describe', file, '--format', 'json'])
  assert.equal(code, 0)
  const description = JSON.parse(stdout)
  assert.equal(description.applicationId, 'support-tickets')
  assert.deepEqual(
    description.topics
      .filter((t: { role: string }) => t.role === 'repartition')
      .map((t: { name: string; config: unknown }) => [t.name, t.config]),
    [
      ['support-tickets-tickets-reset-repartition', { 'cleanup.policy': 'delete', 'retention.ms': '-1' }],
      ['support-tickets-join-customers-subscription-repartition', { 'cleanup.policy': 'delete', 'retention.ms': '-1' }],
      ['support-tickets-join-customers-response-repartition', { 'cleanup.policy': 'delete', 'retention.ms': '-1' }],
      ['support-tickets-join-customers-right-repartition', { 'cleanup.policy': 'delete', 'retention.ms': '-1' }],
    ],
  )
})

test('describe --format mermaid prints a flowchart', async () => {
  const { code, stdout } = await run(['describe', file, '-f', 'mermaid'])
  assert.equal(code, 0)
  assert.match(stdout, /^flowchart LR\n/)
  assert.equal(stdout, topology.describe('mermaid'))
})

test('describe refuses an unknown format, a missing file and a file without a topology (exit 78)', async () => {
  const badFormat = await run(['describe', file, '--format', 'svg'])
  assert.equal(badFormat.code, 78)
  assert.match(badFormat.stderr, /--format: must be one of text, json, mermaid/)
  const missing = await run(['describe', 'no/such/topology.ts'])
  assert.equal(missing.code, 78)
  assert.match(missing.stderr, /no\/such\/topology\.ts: no such file/)
  const notATopology = await run(['describe', fileURLToPath(new URL('../support/fk-join-cases.ts', import.meta.url))])
  assert.equal(notATopology.code, 78)
  assert.match(notATopology.stderr, /must default-export an app/)
})

test('describe without a file prints its usage and exits 2', async () => {
  const { code, stderr } = await run(['describe'])
  assert.equal(code, 2)
  assert.match(stderr, /usage: ragstream describe <app>/)
})

test('describe of a topology that fails validation prints every problem and exits 78', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ragstream-describe-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const dsl = new URL('../../src/dsl/index.ts', import.meta.url).href
  const bad = join(dir, 'bad.ts')
  writeFileSync(
    bad,
    `import { TopologyBuilder } from '${dsl}'\nconst b = new TopologyBuilder({ applicationId: 'bad' })\nb.cdcTable('t', { name: 't' } as never)\nexport default b.build()\n`,
  )
  const { code, stderr } = await run(['describe', bad])
  assert.equal(code, 78)
  assert.equal(
    stderr,
    "error RS_TOPOLOGY_INVALID: invalid topology 'bad':\n  /topology/nodes/t/decode: required for a CDC table (e.g. the Debezium decoder from src/cdc)\n  /topology/nodes: no sink: write at least one output with .to(topic)\n",
  )
})
