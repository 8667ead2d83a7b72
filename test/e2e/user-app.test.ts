// Issue 10's done-when: a topology that is not a reference one — reviews joined by foreign key with
// their product, and the product with its brand (two FK joins), governed with a data subject per
// reviewer, forgotten on request — in a temporary project that depends on the packed package, driven
// through every command against the real stack: describe, run (two instances), sink, status (lag per
// source partition equals the group's committed offsets), query (as an analyst), forget --wait (no
// row left, and no key of the subject in any Redis store of the app, found by SCAN), replay to v2
// with progress and ETA, promote (and --drop-old refusing while v1's sink runs).
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Admin, Producer } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import pg from 'pg'
import { loadConfig } from '../../src/config/file.ts'
import { deployment } from '../../src/ops/deployment.ts'
import { defineApp } from '../../src/app/app.ts'
import { bootstrapDatabase } from '../../src/sink/migrations.ts'
import { modelsDir } from '../../src/embedding/models.ts'
import { ADMIN_URL, createRoles, roleUrl } from '../sink/support.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const execute = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'node_modules/.bin')
const NODE = join(BIN, 'node')
const PARTITIONS = 2
const MARKER = 'ZORBLAX'

const topologyFile = (name: string, sql: string, prefix: string): string => `
import { cdcTableDecoder, DebeziumDecoder, defineApp, definePolicy, redactAtSource, TopologyBuilder, UpsertDecoder, type RowLineage } from 'ragstream'

interface Review { id: number; product_sku: string; reviewer_id: number; body: string; stars: number; _source: RowLineage }
interface Product { sku: string; name: string; brand_id: string }
interface Brand { id: string; name: string; classification: string }

const policy = definePolicy({
  name: '${name}',
  version: '1',
  classify: (_review, joined) => (joined.classification === 'confidential' ? 'confidential' : 'internal'),
  subjects: (_review, joined) => [\`reviewer:\${String(joined.reviewer_id)}\`],
})

const upserts = () => cdcTableDecoder(new UpsertDecoder({ valueFormat: 'json' }), { lineageField: false }).decode

export default defineApp({
  name: '${name}',
  sqlName: '${sql}',
  sourcePrefix: { default: '${prefix}', env: 'SHOP_PREFIX' },
  deletionsTopic: (prefix) => \`\${prefix}.governance.deletions\`,
  build(d) {
    const builder = new TopologyBuilder({ applicationId: d.applicationId, version: d.version, services: d.services })
    const brands = builder.table<Brand>(d.source('brands'), { name: 'brands', decode: upserts() })
    const products = builder.table<Product>(d.source('products'), { name: 'products', decode: upserts() })
    builder
      .cdcTable<Review>(d.source('public.reviews'), {
        name: 'reviews',
        decode: redactAtSource(cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' })).decode),
      })
      .join(products, {
        name: 'join-products',
        type: 'left',
        foreignKey: (review) => review.product_sku,
        joiner: (review, product) => ({ review, product }),
      })
      .join(brands, {
        name: 'join-brands',
        type: 'left',
        foreignKey: ({ product }) => product?.brand_id ?? null,
        joiner: ({ review, product }, brand) => ({
          ...review,
          product: product?.name ?? null,
          brand: brand?.name ?? null,
          classification: brand?.classification ?? 'internal',
        }),
      })
      .govern({
        name: 'govern',
        policy,
        document: (r) => ({ text: r.body, metadata: { product: r.product, brand: r.brand, stars: r.stars } }),
        joined: (r) => ({ reviewer_id: r.reviewer_id, classification: r.classification }),
        tenant: () => 'shop',
        forget: { deletionsTopic: d.deletionsTopic! },
      })
      .chunk({ entityType: 'review', template: '{product} by {brand}\\n\\n{text}' })
      .embed()
      .toChunks(d.chunkTopic)
    return builder.build()
  },
})
`

interface Result {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

function debezium(table: string, op: 'c' | 'u', row: Record<string, unknown>, lsn: number): string {
  const ts = 1_765_000_000_000 + lsn
  return JSON.stringify({
    before: null,
    after: row,
    op,
    ts_ms: ts,
    source: { connector: 'postgresql', db: 'shop', schema: 'public', table, lsn, ts_ms: ts },
  })
}

test(
  'a user app (reviews → products → brands, governed, forgettable) from the packed package through every command',
  { timeout: 600_000 },
  async (t) => {
    const id = uniqueName('ua').replace(/-/g, '').slice(0, 10)
    const name = `reviews-${id}`
    const sql = `reviews_${id}`
    const prefix = `shop${id}`
    const analyst = `rs_ua_${id}`
    const dir = mkdtempSync(join(tmpdir(), 'ragstream-user-app-'))
    const children: ChildProcess[] = []
    const redis = new Redis(endpoints.redisUrl)
    const admin = new Admin({ clientId: `${name}-test`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
    const pgAdmin = new pg.Client({ connectionString: ADMIN_URL })
    pgAdmin.on('error', () => {})
    await pgAdmin.connect()
    const config = loadConfig({ env: {} })
    const app = defineApp({ name, sqlName: sql, build: () => undefined as never })
    const v1 = deployment({ app, version: 'v1', config })
    const v2 = deployment({ app, version: 'v2', config })
    t.after(async () => {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
      const topics = (await admin.listTopics()).filter(
        (topic) => topic.startsWith(prefix) || topic.startsWith(name) || topic.startsWith(`rag.chunks.${name}`),
      )
      await admin.deleteTopics({ topics }).catch(() => {})
      await admin
        .deleteGroups({ groups: [v1.applicationId, v2.applicationId, v1.sink.groupId, v2.sink.groupId] })
        .catch(() => {})
      await admin.close()
      for (const pattern of [`rs:{${v1.applicationId}:*`, `rs:{${v2.applicationId}:*`]) {
        const keys = await scanKeys(pattern)
        if (keys.length > 0) await redis.del(...keys)
      }
      await redis.quit()
      const n = v1.sink.names
      await pgAdmin.query(`DROP VIEW IF EXISTS ${n.view}`).catch(() => {})
      for (const d of [v1, v2])
        await pgAdmin
          .query(`DROP TABLE IF EXISTS ${d.sink.names.chunkTable}, ${d.sink.names.tombstoneTable}`)
          .catch(() => {})
      await pgAdmin.query(`DELETE FROM ${n.versionsTable} WHERE topology = $1`, [sql]).catch(() => {})
      await pgAdmin.end()
      rmSync(dir, { recursive: true, force: true })
    })
    async function scanKeys(pattern: string): Promise<string[]> {
      const keys: string[] = []
      let cursor = '0'
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
        keys.push(...batch)
        cursor = next
      } while (cursor !== '0')
      return keys
    }

    // ── a project depending on the packed package
    const { stdout: packed } = await execute('npm', ['pack', '--silent', '--pack-destination', dir], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${BIN}:${process.env.PATH}` },
      maxBuffer: 16 << 20,
    })
    const project = join(dir, 'shop')
    const installed = join(project, 'node_modules/ragstream')
    mkdirSync(installed, { recursive: true })
    await execute('tar', ['-xzf', join(dir, packed.trim().split('\n').pop()!), '-C', installed, '--strip-components=1'])
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    for (const dep of Object.keys(pkg.dependencies)) {
      const link = join(project, 'node_modules', dep)
      mkdirSync(dirname(link), { recursive: true })
      symlinkSync(join(ROOT, 'node_modules', dep), link)
    }
    mkdirSync(join(project, 'src'))
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'shop', type: 'module', private: true }))
    writeFileSync(join(project, 'src/reviews.ts'), topologyFile(name, sql, prefix))
    writeFileSync(join(project, 'ragstream.json'), JSON.stringify({ apps: { reviews: 'src/reviews.ts' } }))
    const cliPath = join(installed, 'bin/ragstream.js')
    // The installed package looks for models under its own folder (node_modules/ragstream/.stack): a
    // user's project names its models folder, as this one names the checkout's (`npm run setup` filled it).
    const env: NodeJS.ProcessEnv = { ...process.env, RAGSTREAM_LOG_FORMAT: 'json', RAGSTREAM_MODELS_DIR: modelsDir() }
    const withConfig = (args: string[]) => [...args, '--config', 'ragstream.json']
    const cli = (args: string[], timeout = 120_000): Promise<Result> =>
      execute(NODE, [cliPath, ...withConfig(args)], { cwd: project, env, timeout, maxBuffer: 16 << 20 }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (error: { code?: number; stdout?: string; stderr?: string }) => ({
          code: typeof error.code === 'number' ? error.code : -1,
          stdout: error.stdout ?? '',
          stderr: error.stderr ?? '',
        }),
      )
    const start = (args: string[]): { child: ChildProcess; output: () => string } => {
      const child = spawn(NODE, [cliPath, ...withConfig(args)], { cwd: project, env })
      let output = ''
      child.stdout!.on('data', (c: Buffer) => (output += c.toString()))
      child.stderr!.on('data', (c: Buffer) => (output += c.toString()))
      children.push(child)
      return { child, output: () => output }
    }
    const stop = async (child: ChildProcess): Promise<void> => {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
    const until = async (what: string, check: () => Promise<boolean>, ms = 90_000): Promise<void> => {
      const deadline = Date.now() + ms
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
        await new Promise((r) => setTimeout(r, 500))
      }
    }

    // ── describe: by its name from ragstream.json
    const described = await cli(['describe', 'reviews'])
    assert.equal(described.code, 0, described.stderr)
    for (const s of [
      `${prefix}.public.reviews`,
      `${prefix}.products`,
      `${prefix}.brands`,
      'join-products',
      'join-brands',
    ])
      assert.match(described.stdout, new RegExp(s.replaceAll('.', '\\.')), s)

    // ── source data: brands, products (upserts), reviews (Debezium); reviewer 1 wrote two reviews
    await createTopics(t, [`${prefix}.public.reviews`, `${prefix}.products`, `${prefix}.brands`], PARTITIONS, [
      { name: 'cleanup.policy', value: 'compact' },
    ])
    const producer = new Producer({ clientId: `${name}-producer`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
    t.after(() => producer.close())
    const json = (topic: string, key: string, value: string) => ({
      topic,
      key: Buffer.from(key),
      value: Buffer.from(value),
    })
    const reviews = [
      {
        id: 9001,
        product_sku: 'p1',
        reviewer_id: 1,
        stars: 1,
        body: `${MARKER} battery died after a week, mail me at zq@example.com`,
      },
      {
        id: 9002,
        product_sku: 'p2',
        reviewer_id: 1,
        stars: 2,
        body: `${MARKER} the hinge squeaks and the lid wobbles`,
      },
      ...Array.from({ length: 10 }, (_, i) => ({
        id: 100 + i,
        product_sku: i % 2 === 0 ? 'p1' : 'p2',
        reviewer_id: 2 + (i % 3),
        stars: 3 + (i % 3),
        body: ['great battery life, lasts for days', 'sturdy lid and quiet hinge', 'fast charging, light to carry'][
          i % 3
        ],
      })),
    ]
    await producer.send({
      messages: [
        json(`${prefix}.brands`, 'b1', JSON.stringify({ id: 'b1', name: 'Acme', classification: 'internal' })),
        json(`${prefix}.brands`, 'b2', JSON.stringify({ id: 'b2', name: 'Globex', classification: 'confidential' })),
        json(`${prefix}.products`, 'p1', JSON.stringify({ sku: 'p1', name: 'PowerBank 5000', brand_id: 'b1' })),
        json(`${prefix}.products`, 'p2', JSON.stringify({ sku: 'p2', name: 'Laptop Stand', brand_id: 'b2' })),
        ...reviews.map((r, i) =>
          json(`${prefix}.public.reviews`, JSON.stringify({ id: r.id }), debezium('reviews', 'c', r, 1000 + i)),
        ),
      ],
    })

    // ── tables (as the owner), the sink, and two processor instances
    await bootstrapDatabase(pgAdmin, v1.sink.names)
    const migrated = await cli(['sink', 'reviews', '--migrate', '--activate'])
    assert.equal(migrated.code, 0, migrated.stderr)
    const sink = start(['sink', 'reviews', '--instance-id', 'sink-1'])
    const a = start(['run', 'reviews', '--instance-id', 'a'])
    const b = start(['run', 'reviews', '--instance-id', 'b'])
    const rows = async (table: string, where = 'true', params: unknown[] = []): Promise<number> =>
      Number(
        (await pgAdmin.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${where}`, params)).rows[0].n,
      )
    await until(
      `12 reviews in ${v1.sink.names.chunkTable}\n${a.output()}\n${b.output()}\n${sink.output()}`,
      async () => (await rows(v1.sink.names.chunkTable).catch(() => 0)) >= reviews.length,
    )
    assert.match(a.output() + b.output(), /"event":"topic-(created|verified)","topic":"rag\.chunks\./)
    assert.equal(await rows(v1.sink.names.chunkTable, `content LIKE '%zq@example.com%'`), 0, 'PII masked')

    // ── status: both instances running; lag per source partition from the group's committed offsets
    let status: {
      versions: {
        processor: {
          members: number
          seen: boolean
          partitions: { topic: string; partition: number; committed: string | null; end: string; lag: number }[]
        }
      }[]
    } = { versions: [] }
    await until('both processor instances in the group and caught up', async () => {
      const r = await cli(['status', 'reviews', '--version', 'v1', '--format', 'json'])
      if (r.code !== 0) return false
      status = JSON.parse(r.stdout) as typeof status
      const p = status.versions[0].processor
      return p.members === 2 && p.partitions.every((x) => x.lag === 0)
    })
    const [group] = await admin.listConsumerGroupOffsets({ groups: [v1.applicationId] })
    const committed = new Map<string, string>()
    for (const topic of group.topics)
      for (const p of topic.partitions)
        committed.set(`${topic.name}[${p.partitionIndex}]`, p.committedOffset.toString())
    const processor = status.versions[0].processor
    assert.ok(processor.seen)
    assert.equal(
      processor.partitions.length,
      4 * PARTITIONS,
      'every partition of the three sources and the deletions topic',
    )
    for (const p of processor.partitions) {
      assert.equal(p.committed, committed.get(`${p.topic}[${p.partition}]`) ?? null, `${p.topic}[${p.partition}]`)
      assert.equal(p.lag, Number(p.end) - Number(p.committed))
    }

    // ── query as an analyst, embedded with the model the rows record
    await createRoles(t, pgAdmin, [analyst])
    const granted = await cli(['sink', 'reviews', '--grant', analyst, '--classifications', '*', '--tenants', '*'])
    assert.equal(granted.code, 0, granted.stderr)
    const found = await cli([
      'query',
      'battery died after a week',
      '--app',
      'reviews',
      '-k',
      '3',
      '--json',
      '--postgres-url',
      roleUrl(analyst),
    ])
    assert.equal(found.code, 0, found.stderr)
    const hits = found.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { entity_key: string; content: string })
    assert.equal(hits.length, 3)
    assert.match(hits[0].content, /battery died after a week/, 'the nearest row is the one with the same words')

    // ── forget reviewer 1: receipt, no row, and no key of theirs in any Redis store of the app
    const forgotten = await cli(
      [
        'forget',
        '--app',
        'reviews',
        '--subject',
        'reviewer:1',
        '--reason',
        'e2e',
        '--wait',
        '--timeout',
        '90',
        '--json',
      ],
      150_000,
    )
    assert.equal(forgotten.code, 0, `${forgotten.stderr}\n${a.output()}\n${b.output()}`)
    assert.equal(await rows(v1.sink.names.chunkTable, 'subjects @> ARRAY[$1]::text[]', ['reviewer:1']), 0)
    assert.equal(await rows(v1.sink.names.chunkTable), reviews.length - 2)
    const keys = await scanKeys(`rs:{${v1.applicationId}:*`)
    assert.ok(keys.length > 0, 'the app holds state in Redis')
    // Every store: sources, join results, both FK subscription indexes, chunk sets.
    const leftovers: string[] = []
    for (const key of keys) {
      if ((await redis.type(key)) !== 'hash') continue
      const hash = await redis.hgetallBuffer(key)
      for (const [field, value] of Object.entries(hash))
        if (/9001|9002/.test(field) || value.includes(MARKER)) leftovers.push(`${key} ${field}`)
    }
    assert.deepEqual(leftovers, [], 'no store of the app keeps the forgotten reviewer’s reviews or their text')

    // ── replay into v2 with the local ONNX model: progress with an ETA, then caught up
    const replayed = await cli(['replay', 'reviews', '--to-version', 'v2', '--embedding', 'local'], 240_000)
    assert.equal(replayed.code, 0, replayed.stderr)
    assert.match(replayed.stdout, /records .*ETA/)
    assert.match(replayed.stdout, /caught up in/)
    assert.equal(await rows(v2.sink.names.chunkTable), reviews.length - 2, 'v2 forgets what v1 forgot')

    // ── promote: --drop-old refuses while v1's sink runs; the switch itself works; drop after stopping it
    const refused = await cli(['promote', 'reviews', 'v2', '--drop-old'])
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /RS_VERSION_IN_USE/)
    assert.match(refused.stderr, new RegExp(v1.sink.groupId.replaceAll('.', '\\.')))
    assert.equal(await rows(v1.sink.names.chunkTable), reviews.length - 2, 'nothing was dropped')
    const promoted = await cli(['promote', 'reviews', 'v2'])
    assert.equal(promoted.code, 0, promoted.stderr)
    assert.match(promoted.stdout, /now reads .*@v2/)
    // query embeds with the model v2's rows record (local), where v1's were hashing
    const models = await pgAdmin.query<{ m: string }>(
      `SELECT DISTINCT embedding_model AS m FROM ${v2.sink.names.chunkTable}`,
    )
    assert.deepEqual(
      models.rows.map((r) => r.m.split('@')[0]),
      ['local:all-minilm-l6-v2-int8'],
    )
    const local = await cli([
      'query',
      'great battery life, lasts for days',
      '--app',
      'reviews',
      '-k',
      '2',
      '--json',
      '--postgres-url',
      roleUrl(analyst),
    ])
    assert.equal(local.code, 0, local.stderr)
    const near = local.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { content: string })
    assert.match(near[0].content, /great battery life, lasts for days/)
    await Promise.all([stop(sink.child), stop(a.child), stop(b.child)])
    const dropped = await cli(['promote', 'reviews', 'v2', '--drop-old'])
    assert.equal(dropped.code, 0, dropped.stderr)
    assert.match(dropped.stdout, /dropped .*@v1/)
  },
)
