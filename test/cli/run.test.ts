// `ragstream run --metrics-port` exports what a topology file's own components count: the governed
// knowledge-base topology, built by a file with its own services (an OpenAI-compatible fake that
// fails on cue), run by the CLI against the real stack. /metrics shows redactions per detector,
// govern's outcomes, and the embedder's calls, retries, failures, texts, tokens and latency.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Admin, Producer } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { checkKafka } from '../../src/config/services.ts'
import { encodeChange } from '../../src/generator/debezium-envelope.ts'
import { startFakeOpenAI } from '../embedding/fake-openai.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { readCommitted } from '../support/runtime-harness.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { freePort } from '../support/local.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const PARTITIONS = 2

/** The value of one sample line (`name{labels} value`), or undefined. */
function sample(exposition: string, name: string, labels: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(`${name}{${labels}} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

test(
  "ragstream run --metrics-port: redactions per detector, govern outcomes and embedding calls, retries and failures of a topology file's own services",
  { timeout: 90_000 },
  async (t) => {
    await checkKafka(endpoints)
    const prefix = uniqueName('cli-kb')
    const applicationId = uniqueName('kb-run')
    const chunkTopic = uniqueName('rag.chunks.kb-run')
    const cachePrefix = uniqueName('rs-test-emb')
    const articles = `${prefix}.articles`
    const categories = `${prefix}.public.categories`
    const admin = new Admin({ clientId: uniqueName('run-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    const redis = new Redis(endpoints.redisUrl)
    t.after(async () => {
      const topics = (await admin.listTopics()).filter((name) => name.startsWith(applicationId))
      await admin.deleteTopics({ topics }).catch(() => {})
      await admin.deleteGroups({ groups: [applicationId] }).catch(() => {})
      await admin.close()
      const keys = await redis.keys(`${cachePrefix}:*`)
      if (keys.length > 0) await redis.del(...keys)
      await redis.quit()
      await deleteSubject(`${chunkTopic}-value`)
      await deleteSubject(`${chunkTopic}-audit-value`)
    })
    await createTopics(t, [articles, categories], PARTITIONS, [{ name: 'cleanup.policy', value: 'compact' }])
    await createTopics(t, [chunkTopic], PARTITIONS)

    // The embedding service answers 503 to its first three requests: the startup probe fails after its
    // one retry (RS_EMBEDDING_FAILED; the batch aborts and is retried), then succeeds after one more.
    const fake = await startFakeOpenAI(t, {
      dimensions: 16,
      intercept: (_request, n, res) => {
        if (n > 3) return false
        res.writeHead(503).end('warming up')
        return true
      },
    })
    const embedding = {
      kind: 'openai',
      model: 'fake-embed',
      dimensions: 16,
      baseUrl: fake.baseUrl,
      apiKeyEnv: 'RAGSTREAM_TEST_NO_KEY',
      maxRetries: 1,
      initialBackoffMs: 5,
      maxBackoffMs: 10,
    }
    const dir = await mkdtemp(join(tmpdir(), 'ragstream-run-kb-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'knowledge-base.ts')
    await writeFile(
      file,
      [
        `import { RagServices } from ${JSON.stringify(join(ROOT, 'src/config/rag-services.ts'))}`,
        `import { knowledgeBase } from ${JSON.stringify(join(ROOT, 'topologies/knowledge-base.ts'))}`,
        `const chunkTopic = ${JSON.stringify(chunkTopic)}`,
        `const services = RagServices.fromEnv({ chunkTopic, cachePrefix: ${JSON.stringify(cachePrefix)}, embedding: ${JSON.stringify(embedding)} })`,
        `export default knowledgeBase({ prefix: ${JSON.stringify(prefix)}, applicationId: ${JSON.stringify(applicationId)}, chunkTopic, services })`,
      ].join('\n'),
    )

    const producer = new Producer({
      clientId: uniqueName('run-feed'),
      bootstrapBrokers: [...endpoints.kafkaBrokers],
      idempotent: true,
    })
    t.after(() => producer.close())
    const table = {
      server: prefix,
      schema: 'public',
      table: 'categories',
      key: ['id'],
      columns: [
        { name: 'id', type: 'int64', optional: false },
        { name: 'name', type: 'string', optional: false },
        { name: 'classification', type: 'string', optional: false },
      ],
    } as const
    const [category] = encodeChange(
      table,
      { op: 'r', before: null, after: { id: 1, name: 'Billing', classification: 'public' } },
      { withSchema: false, tsMs: 1, lsn: 1, txId: 1 },
    )
    const article = (slug: string, body: string, published = true) => ({
      topic: articles,
      key: Buffer.from(slug),
      value: Buffer.from(JSON.stringify({ slug, category_id: 1, title: slug, body, published })),
    })
    await producer.send({
      messages: [
        { topic: categories, key: category.key, value: category.value ?? undefined },
        article('contact', '# Contact\nWrite to jane.doe@example.com or call +44 20 7946 0958.'),
        article('refunds', '# Refunds\nRefunds take five days.'),
        article('draft', '# Draft\nMail bob@example.org.', false),
      ],
    })

    const port = await freePort()
    const child = spawn(
      join(ROOT, 'node_modules/.bin/node'),
      [
        join(ROOT, 'bin/ragstream.ts'),
        'run',
        file,
        '--store',
        'memory',
        '--instance-id',
        'metrics',
        '--session-timeout-ms',
        '6000',
        '--metrics-port',
        String(port),
      ],
      {
        env: { ...process.env, RAGSTREAM_KAFKA_BROKERS: endpoints.kafkaBrokers.join(',') },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    )
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })

    const chunks = await readCommitted(chunkTopic, PARTITIONS, (r) => r.length >= 2, 40_000)
    assert.ok(chunks.length >= 2, `chunks of contact and refunds; stderr: ${stderr.slice(-2000)}`)
    // Governance counts are applied once the batch's commit is acknowledged: poll briefly.
    const app = `topology="${applicationId}"`
    let exposition = ''
    for (let i = 0; i < 50; i++) {
      exposition = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      if ((sample(exposition, 'ragstream_governed_rows_total', `${app},node="govern",outcome="emitted"`) ?? 0) >= 2)
        break
      await new Promise((r) => setTimeout(r, 100))
    }
    const source = `${app},node="source:${articles}"`
    assert.equal(
      sample(exposition, 'ragstream_redactions_total', `${source},detector="email"`),
      2,
      "contact's address and the draft's (redacted as decoded, before the filter)",
    )
    assert.equal(sample(exposition, 'ragstream_redactions_total', `${source},detector="phone"`), 1)
    assert.equal(
      sample(exposition, 'ragstream_redactions_total', `${app},node="govern",detector="email"`),
      undefined,
      'nothing left for govern to remove',
    )
    assert.equal(sample(exposition, 'ragstream_governed_rows_total', `${app},node="govern",outcome="emitted"`), 2)
    assert.equal(
      sample(exposition, 'ragstream_governed_rows_total', `${app},node="govern",outcome="denied"`),
      undefined,
    )
    const model = 'model="openai:fake-embed@16"'
    assert.equal(
      sample(exposition, 'ragstream_embedding_failures_total', `${model},code="RS_EMBEDDING_FAILED"`),
      1,
      stderr.slice(-2000),
    )
    assert.equal(sample(exposition, 'ragstream_embedding_retries_total', model), 2)
    const calls = sample(exposition, 'ragstream_embedding_calls_total', model) ?? 0
    assert.ok(calls >= 2, `the probe and the chunks' call (${calls})`)
    assert.equal(calls, fake.requests.length - 3, 'every answered request is one call')
    assert.equal(
      sample(exposition, 'ragstream_embedding_items_total', model),
      fake.requests.slice(3).reduce((n, r) => n + r.input.length, 0),
    )
    assert.equal(
      sample(exposition, 'ragstream_embedding_tokens_total', model),
      fake.requests.slice(3).reduce((n, r) => n + r.input.length * 3, 0),
      'billed tokens from usage',
    )
    assert.equal(sample(exposition, 'ragstream_embedding_latency_seconds_count', model), calls)

    child.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const code = await Promise.race([
      exited,
      new Promise((resolve) => (timer = setTimeout(resolve, 30_000, 'still running 30 s after SIGTERM'))),
    ])
    clearTimeout(timer)
    assert.equal(code, 0, stderr.slice(-2000))
  },
)

test('ragstream run --name --prefix: a second copy of an app runs side by side under its own names (application id, internal and chunk topics)', async (t) => {
  await checkKafka(endpoints)
  const { loadConfig } = await import('../../src/config/file.ts')
  const { loadProcessorTopology } = await import('../../src/cli/commands/run.ts')
  const prefix = uniqueName('copy-src')
  const name = uniqueName('copy')
  const sources = [`${prefix}.public.tickets`, `${prefix}.public.customers`, `${prefix}.products`]
  const admin = new Admin({ clientId: uniqueName('copy-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(async () => {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(name) || topic.includes(name))
    await admin.deleteTopics({ topics }).catch(() => {})
    await admin.close()
  })
  // The deletions topic too: the copy reads its prefix's own (created here, so the broker lists it in time).
  await createTopics(t, [...sources, `${prefix}.governance.deletions`], PARTITIONS, [
    { name: 'cleanup.policy', value: 'compact' },
  ])
  const loaded = await loadProcessorTopology('support-copilot', loadConfig({ env: process.env }), { name, prefix })
  t.after(() => loaded.close())
  const { topology } = loaded
  assert.equal(topology.applicationId, name)
  assert.deepEqual(topology.sourceTopics.filter((s) => sources.includes(s)).sort(), [...sources].sort())
  assert.deepEqual(
    topology.topics.filter((s) => s.role === 'sink').map((s) => s.name),
    [`rag.chunks.${name}`],
  )
  const internal = topology.topics.filter((s) => s.role === 'changelog' || s.role === 'repartition')
  assert.ok(internal.length > 5)
  for (const s of internal) assert.ok(s.name.startsWith(`${name}-`), s.name)

  // A bare topology has no name to change: --name is refused, naming the option.
  await assert.rejects(
    loadProcessorTopology(join(ROOT, 'topologies/passthrough.ts'), loadConfig({ env: process.env }), { name }),
    (error: unknown) => (error as { context?: { path?: string } }).context?.path === '--name',
  )
})
