// `ragstream run <topology-file>` end to end: a DSL topology file (table → to) compiled with the
// broker's partition counts, run by the CLI with in-memory stores and Prometheus metrics, stopped by
// SIGTERM (exit 0).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Admin, Producer } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { readCommitted } from '../support/runtime-harness.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const PARTITIONS = 2

test('ragstream run: runs a DSL topology file exactly once and stops gracefully on SIGTERM', { timeout: 60_000 }, async (t) => {
  await checkKafka(endpoints)
  const applicationId = uniqueName('rt-cli')
  const input = `${applicationId}.in`
  const output = `${applicationId}.out`
  await createTopics(t, [input, output], PARTITIONS)
  t.after(async () => {
    const admin = new Admin({ clientId: uniqueName('cleanup'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    await admin.deleteTopics({ topics: [`${applicationId}-input-changelog`, `${applicationId}-dead-letter`] }).catch(() => {})
    await admin.close()
  })
  const dir = await mkdtemp(join(tmpdir(), 'ragstream-run-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'topology.ts')
  await writeFile(
    file,
    [
      `import { TopologyBuilder } from ${JSON.stringify(join(ROOT, 'src/dsl/index.ts'))}`,
      `const builder = new TopologyBuilder({ applicationId: ${JSON.stringify(applicationId)} })`,
      `builder.table(${JSON.stringify(input)}, { name: 'input' }).to(${JSON.stringify(output)})`,
      'export default builder.build()',
    ].join('\n'),
  )

  const producer = new Producer({ clientId: uniqueName('feed'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => producer.close())
  await producer.send({ messages: Array.from({ length: 200 }, (_, i) => ({ topic: input, key: Buffer.from(`k${i}`), value: Buffer.from(JSON.stringify({ n: i })) })) })

  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  const args = ['run', file, '--store', 'memory', '--instance-id', 'cli-test', '--session-timeout-ms', '3000', '--metrics-port', String(port)]
  const child = spawn(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'bin/ragstream.ts'), ...args], {
    env: { ...process.env, RAGSTREAM_KAFKA_BROKERS: endpoints.kafkaBrokers.join(',') },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })

  const records = await readCommitted(output, PARTITIONS, (r) => r.length >= 200, 30_000)
  const exposition = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  assert.match(exposition, new RegExp(`ragstream_records_in_total\\{topology="${applicationId}",node="${input.replaceAll('.', '\\.')}"\\} 200`))
  child.kill('SIGTERM')
  assert.equal(await exited, 0, stderr)
  assert.equal(records.length, 200, stderr)
  assert.deepEqual(new Set(records.map((r) => r.key?.toString())), new Set(Array.from({ length: 200 }, (_, i) => `k${i}`)))
  const events = stderr.trim().split('\n').map((l) => JSON.parse(l) as { event: string; transactionalId?: string })
  assert.equal(events[0].event, 'starting')
  assert.equal(events[0].transactionalId, `${applicationId}-cli-test`)
  assert.ok(events.some((e) => e.event === 'signal'))
  assert.equal(events.at(-1)?.event, 'stopped')
})
