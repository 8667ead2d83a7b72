// The operator's path: `ragstream generate` then `ragstream run` on a support-copilot topology file
// whose services come from the environment (RagServices.fromEnv): the first batch opens Redis and the
// registry, chunk events appear, and SIGTERM stops the process with exit 0 (the embedding cache's
// Redis connection does not keep it alive).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Admin } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { checkKafka } from '../../src/config/services.ts'
import { generatorTopics } from '../../src/generator/generator.ts'
import { readCommitted } from '../support/runtime-harness.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { deleteKeys } from '../support/local.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const NODE = join(ROOT, 'node_modules/.bin/node')
const CLI = join(ROOT, 'bin/ragstream.ts')
const PARTITIONS = 2

function ragstream(args: string[]): {
  exited: Promise<number | null>
  stderr: () => string
  kill: (signal: NodeJS.Signals) => void
} {
  const child = spawn(NODE, [CLI, ...args], {
    env: { ...process.env, RAGSTREAM_KAFKA_BROKERS: endpoints.kafkaBrokers.join(',') },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { exited, stderr: () => stderr, kill: (signal) => child.exitCode === null && child.kill(signal) }
}

test(
  'ragstream generate + ragstream run support-copilot: chunk events on the chunk topic, graceful stop on SIGTERM',
  { timeout: 90_000 },
  async (t) => {
    await checkKafka(endpoints)
    const prefix = uniqueName('cli-sc')
    const applicationId = uniqueName('support-copilot-cli')
    const chunkTopic = uniqueName('rag.chunks.support-copilot-cli')
    const deletionsTopic = `${prefix}.governance.deletions`
    const cachePrefix = uniqueName('rs-test-emb')
    const redis = new Redis(endpoints.redisUrl)
    const admin = new Admin({ clientId: uniqueName('cli-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    t.after(async () => {
      const topics = (await admin.listTopics()).filter(
        (name) => name.startsWith(prefix) || name.startsWith(applicationId),
      )
      await admin.deleteTopics({ topics }).catch(() => {})
      await admin.deleteGroups({ groups: [applicationId] }).catch(() => {})
      await admin.close()
      await deleteKeys(redis, `rs:{${applicationId}:*`)
      await deleteKeys(redis, `${cachePrefix}:*`)
      await redis.quit()
      await deleteSubject(`${chunkTopic}-value`)
      await deleteSubject(`${chunkTopic}-audit-value`).catch(() => {})
      await deleteSubject(`${deletionsTopic}-value`).catch(() => {})
    })
    await createTopics(t, [chunkTopic], PARTITIONS)
    // The governance deletions topic is a source too, co-partitioned with the CDC topics.
    await createTopics(t, [deletionsTopic], PARTITIONS, [{ name: 'cleanup.policy', value: 'compact' }])

    const generate = ragstream([
      'generate',
      '--prefix',
      prefix,
      '--create-topics',
      '--partitions',
      String(PARTITIONS),
      '--backfill',
      '40',
      '--rate',
      '0',
      '--seed',
      '3',
    ])
    let generateTimer: NodeJS.Timeout | undefined
    const generated = await Promise.race([
      generate.exited,
      new Promise(
        (resolve) => (generateTimer = setTimeout(resolve, 120_000, 'ragstream generate still running after 120 s')),
      ),
    ])
    clearTimeout(generateTimer)
    assert.equal(generated, 0, generate.stderr())
    assert.deepEqual(
      (await admin.listTopics()).filter((name) => generatorTopics(prefix).includes(name)).sort(),
      generatorTopics(prefix).sort(),
    )

    const dir = await mkdtemp(join(tmpdir(), 'ragstream-sc-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'support-copilot.ts')
    await writeFile(
      file,
      [
        `import { RagServices } from ${JSON.stringify(join(ROOT, 'src/config/rag-services.ts'))}`,
        `import { supportCopilot } from ${JSON.stringify(join(ROOT, 'topologies/support-copilot.ts'))}`,
        `const chunkTopic = ${JSON.stringify(chunkTopic)}`,
        `const services = RagServices.fromEnv({ chunkTopic, cachePrefix: ${JSON.stringify(cachePrefix)} })`,
        `export default supportCopilot({ prefix: ${JSON.stringify(prefix)}, applicationId: ${JSON.stringify(applicationId)}, chunkTopic, deletionsTopic: ${JSON.stringify(deletionsTopic)}, services })`,
      ].join('\n'),
    )

    const run = ragstream(['run', file, '--instance-id', 'cli', '--session-timeout-ms', '6000'])
    t.after(() => run.kill('SIGKILL'))
    const records = await readCommitted(
      chunkTopic,
      PARTITIONS,
      (r) => new Set(r.map((x) => x.key?.toString())).size >= 40,
      40_000,
    )
    const chunkIds = new Set(records.map((r) => r.key?.toString()))
    assert.ok(chunkIds.size >= 40, `${chunkIds.size} chunk ids for 40 tickets; stderr: ${run.stderr().slice(-2000)}`)
    for (const r of records) assert.equal(r.value?.[0], 0, 'Confluent wire format: magic byte 0')

    run.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const exit = await Promise.race([
      run.exited,
      new Promise((resolve) => (timer = setTimeout(resolve, 15_000, 'still running 15 s after SIGTERM'))),
    ])
    clearTimeout(timer)
    assert.equal(exit, 0, run.stderr().slice(-2000))
    const events = run
      .stderr()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string })
    assert.equal(events.at(-1)?.event, 'stopped')
  },
)
