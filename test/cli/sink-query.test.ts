// `ragstream query`: embeds the text like the rows (hashing:v1), searches the view as the analyst's
// role sees it, and filters with --where clauses that are bound parameters, never SQL.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { PassThrough } from 'node:stream'
import { main } from '../../src/cli/main.ts'
import { hashingEmbed } from '../../src/embedding/hashing.ts'
import { grantAnalyst } from '../../src/sink/migrations.ts'
import { BatchWriter, buildBatch, claimPartitions } from '../../src/sink/batch-writer.ts'
import { nearestNeighbourSql, parseWhere } from '../../src/sink/query.ts'
import type { ChunkRow } from '../../src/sink/chunk-codec.ts'
import { connect, createRoles, createSinkEnv, roleUrl, type SinkEnv } from '../sink/support.ts'

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

const DOCS = [
  {
    id: 'd1',
    text: 'refund for a damaged parcel',
    tenant: 'acme',
    metadata: { priority: 'high', customer: { tier: 'gold' }, count: 3 },
  },
  { id: 'd2', text: 'password reset email does not arrive', tenant: 'acme', metadata: { priority: 'low' } },
  { id: 'd3', text: 'refund for a damaged parcel from globex', tenant: 'globex', metadata: { priority: 'high' } },
  {
    id: 'd4',
    text: "invoice address change'); DROP TABLE x; --",
    tenant: 'acme',
    metadata: { priority: "high' OR 1=1 --" },
  },
]

function row(env: SinkEnv, doc: (typeof DOCS)[number], offset: bigint): ChunkRow {
  return {
    chunkId: `${doc.id}#0`,
    entityType: 'ticket',
    entityKey: doc.id,
    chunkIndex: 0,
    content: doc.text,
    contentHash: doc.id,
    embedding: `[${Array.from(hashingEmbed(doc.text, env.config.dims)).join(',')}]`,
    metadata: JSON.stringify(doc.metadata),
    classification: 'internal',
    tenant: doc.tenant,
    region: 'eu',
    subjects: '[]',
    policyVersion: null,
    sourceTopic: 'cdc.tickets',
    sourcePartition: 0,
    sourceOffset: String(offset),
    sourcePosition: null,
    sourceTimestampMs: Date.now(),
    topology: env.config.topology,
    topologyVersion: 'v1',
    chunker: 'fixed',
    embeddingModel: `hashing:v1@${env.config.dims}`, // as Embedder.model records it
    emittedAtMs: Date.now(),
    chunkTopic: env.config.topic,
    chunkPartition: 0,
    chunkOffset: offset,
  }
}

test('cli query: nearest neighbours as the analyst sees them, with safe metadata filters', async (t) => {
  const env = await createSinkEnv(t, { dims: 64 })
  const { config } = env
  const analyst = `rs_q_${env.suffix}`
  await createRoles(t, env.admin, [analyst])
  await grantAnalyst(env.owner, config, analyst, { classifications: ['*'], tenants: ['acme'] })
  const sink = await connect(t, env.sinkUrl)
  const token = randomUUID()
  await claimPartitions(sink, config.names, config.topic, [{ partition: 0, initial: 0n, ownerToken: token }])
  await new BatchWriter(config.names, 'test').write(
    sink,
    buildBatch(
      config.topic,
      [{ partition: 0, expected: 0n, next: 4n, ownerToken: token }],
      DOCS.map((d, i) => ({ kind: 'upsert' as const, row: row(env, d, BigInt(i)) })),
    ),
  )

  const base = [
    'query',
    'refund damaged parcel',
    '--topology',
    config.topology,
    '--view-schema',
    config.names.viewSchema,
    '--postgres-url',
    roleUrl(analyst),
  ]
  const table = await run([...base, '-k', '2'])
  assert.equal(table.code, 0, table.stderr)
  const lines = table.stdout.trimEnd().split('\n')
  assert.match(lines[0], /^score\s+entity\s+chunk\s+snippet\s+lineage$/)
  assert.match(
    lines[2],
    /^\d\.\d{4}\s+ticket:d1\s+d1#0\s+refund for a damaged parcel\s+cdc\.tickets\[0\]@0 v1 hashing:v1@64$/,
  )
  assert.equal(lines.length, 4)
  assert.doesNotMatch(table.stdout, /globex/, 'row-level security hides the other tenant')

  const json = async (...extra: string[]) => {
    const r = await run([...base, '--json', ...extra])
    assert.equal(r.code, 0, r.stderr)
    return r.stdout.trim() === ''
      ? []
      : r.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l).chunk_id as string)
  }
  assert.deepEqual(await json('--where', 'priority=high'), ['d1#0'])
  assert.deepEqual(await json('--where', 'customer.tier=gold', '--where', 'tenant=acme'), ['d1#0'])
  assert.deepEqual(await json('--where', 'metadata.count=3'), ['d1#0'])
  assert.deepEqual(await json('--where', 'count="3"'), [], 'a quoted JSON value is a string, not the number 3')
  // Injection attempts are values, compared literally.
  assert.deepEqual(await json('--where', "priority=high' OR 1=1 --"), ['d4#0'])
  assert.deepEqual(await json('--where', "tenant=acme' OR tenant <> '"), [])
  const badKey = await run([...base, '--where', "x') OR true; DROP TABLE y; --=1"])
  assert.equal(badKey.code, 78)
  assert.match(badKey.stderr, /--where\[0\]: must be key=value/)
  const survived = await env.admin.query(`SELECT count(*)::int AS n FROM ${config.names.chunkTable}`)
  assert.equal(survived.rows[0].n, 4)

  // An explicit vector works for models the CLI cannot call.
  const vector = JSON.stringify(Array.from(hashingEmbed('password reset', 64)))
  assert.deepEqual(await json('--vector', vector, '-k', '1'), ['d2#0'])
})

test('query: --where builds bound parameters only', () => {
  const filter = parseWhere(['tenant=acme', "note=a'b", 'customer.tier=gold', 'n=42', 'flag=true'])
  const { text, values } = nearestNeighbourSql({
    view: '"rag"."support"',
    distance: 'cosine',
    vector: [1, 0],
    filter,
    k: 5,
  })
  assert.equal(text.includes("a'b"), false)
  assert.match(text, /WHERE tenant = \$3 AND metadata @> \$4::jsonb/)
  assert.deepEqual(values.slice(2), [
    'acme',
    JSON.stringify({ note: "a'b", customer: { tier: 'gold' }, n: 42, flag: true }),
  ])
  assert.throws(
    () => parseWhere(['no-equals-sign', 'bad key=1', ';=1']),
    (error: Error & { problems?: { path: string }[] }) => {
      assert.deepEqual(
        error.problems!.map((p) => p.path),
        ['--where[0]', '--where[1]', '--where[2]'],
      )
      return true
    },
  )
})
