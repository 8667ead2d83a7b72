// Bulk mode: a version loaded without its vector index, then indexed once, ends equal to the same rows
// written incrementally into an indexed table (same rows, HNSW present, same top-k), and cannot serve
// before its index exists.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { activateVersion, buildVectorIndex, migrate } from '../../src/sink/migrations.ts'
import { resolveSinkConfig, type SinkConfig, type SinkConfigInput } from '../../src/sink/config.ts'
import { BatchWriter, buildBatch, claimPartitions } from '../../src/sink/batch-writer.ts'
import type { ChunkRow } from '../../src/sink/chunk-codec.ts'
import { promoteVersion } from '../../src/ops/index-versions.ts'
import { ADMIN_URL, connect, createSinkEnv, type SinkEnv } from './support.ts'

const DIMS = 16
const ROWS = 400

function vectorOf(i: number): number[] {
  return Array.from(
    { length: DIMS },
    (_, d) =>
      Math.sin(i * 12.9898 + d * 78.233) * 43758.5453 -
      Math.floor(Math.sin(i * 12.9898 + d * 78.233) * 43758.5453) -
      0.5,
  )
}

function chunk(config: SinkConfig, i: number): ChunkRow {
  const id = `c${i}`
  return {
    chunkId: id,
    entityType: 'doc',
    entityKey: `e${i % 50}`,
    chunkIndex: i,
    content: `text ${i}`,
    contentHash: id,
    embedding: `[${vectorOf(i).join(',')}]`,
    metadata: '{}',
    classification: 'public',
    tenant: 'acme',
    region: 'eu',
    subjects: '[]',
    policyVersion: null,
    sourceTopic: 'cdc',
    sourcePartition: 0,
    sourceOffset: String(i),
    sourcePosition: null,
    sourceTimestampMs: 1_700_000_000_000,
    topology: config.topology,
    topologyVersion: config.version,
    chunker: 'fixed',
    embeddingModel: 'm',
    emittedAtMs: 1_700_000_000_000,
    chunkTopic: config.topic,
    chunkPartition: 0,
    chunkOffset: BigInt(i),
  }
}

function inputOf(env: SinkEnv, more: Partial<SinkConfigInput>): SinkConfigInput {
  const n = env.config.names
  return {
    topology: env.config.topology,
    topic: env.config.topic,
    dims: DIMS,
    schema: n.schema,
    viewSchema: n.viewSchema,
    ownerRole: n.ownerRole,
    sinkRole: n.sinkRole,
    ...more,
  }
}

/** Writes the rows in batches of 100 through the sink's exactly-once writer (offsets table). */
async function load(sink: pg.Client, config: SinkConfig): Promise<void> {
  const token = randomUUID()
  const topic = `${config.version}-topic`
  await claimPartitions(sink, config.names, topic, [{ partition: 0, initial: 0n, ownerToken: token }])
  const writer = new BatchWriter(config.names, 'test')
  for (let start = 0; start < ROWS; start += 100) {
    await writer.write(
      sink,
      buildBatch(
        topic,
        [{ partition: 0, expected: BigInt(start), next: BigInt(start + 100), ownerToken: token }],
        Array.from({ length: 100 }, (_, j) => ({ kind: 'upsert' as const, row: chunk(config, start + j) })),
      ),
    )
  }
  const next = await sink.query<{ next_offset: string }>(
    `SELECT next_offset FROM ${config.names.offsetsTable} WHERE topic = $1 AND partition = 0`,
    [topic],
  )
  assert.equal(next.rows[0].next_offset, String(ROWS))
}

async function vectorIndexes(env: SinkEnv, config: SinkConfig): Promise<string[]> {
  const rows = await env.admin.query<{ indexdef: string }>(
    `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 AND indexdef ~ 'USING (hnsw|ivfflat)'`,
    [config.names.schema, config.names.chunkTableName],
  )
  return rows.rows.map((r) => r.indexdef.replaceAll(config.names.chunkTableName, '<table>'))
}

async function contents(env: SinkEnv, config: SinkConfig): Promise<unknown[]> {
  const rows = await env.admin.query(
    `SELECT chunk_id, entity_type, entity_key, chunk_index, content, embedding::text, chunk_offset
     FROM ${config.names.chunkTable} ORDER BY chunk_id`,
  )
  return rows.rows
}

/** Top-k through the HNSW index (sequential scans off; the plan is checked to use the index). */
async function topK(env: SinkEnv, config: SinkConfig, query: number[], k: number): Promise<string[]> {
  await env.admin.query('BEGIN')
  try {
    await env.admin.query(`SET LOCAL enable_seqscan = off; SET LOCAL hnsw.ef_search = ${ROWS}`)
    const sql = `SELECT chunk_id FROM ${config.names.chunkTable} ORDER BY embedding <=> $1::vector LIMIT ${k}`
    const plan = await env.admin.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, [`[${query.join(',')}]`])
    assert.match(plan.rows.map((r) => r['QUERY PLAN']).join('\n'), /Index Scan using .*_hnsw/)
    const rows = await env.admin.query<{ chunk_id: string }>(sql, [`[${query.join(',')}]`])
    return rows.rows.map((r) => r.chunk_id)
  } finally {
    await env.admin.query('ROLLBACK')
  }
}

test('bulk mode: loaded without the vector index, indexed once, equal to an incremental load; cannot serve before', async (t) => {
  const env = await createSinkEnv(t, { dims: DIMS })
  const sink = await connect(t, env.sinkUrl)
  const incremental = resolveSinkConfig(inputOf(env, { version: 'inc' }))
  const bulk = resolveSinkConfig(inputOf(env, { version: 'bulk', deferIndex: true }))
  await migrate(env.owner, incremental)
  await migrate(env.owner, bulk)
  assert.equal((await vectorIndexes(env, incremental)).length, 1)
  assert.deepEqual(await vectorIndexes(env, bulk), [], 'no vector index while bulk-loading')

  await load(sink, incremental)
  await load(sink, bulk)
  // A sink (re)started on the bulk version with ordinary options does not build the index mid-load.
  await migrate(env.owner, resolveSinkConfig(inputOf(env, { version: 'bulk' })))
  assert.deepEqual(await vectorIndexes(env, bulk), [])

  // Not promotable before its index exists: coded error, nothing changed.
  for (const attempt of [() => activateVersion(env.owner, bulk), () => promoteVersion(env.owner, bulk)])
    await assert.rejects(attempt(), (error: Error & { code?: string; hint?: string }) => {
      assert.equal(error.code, 'RS_INDEX_NOT_BUILT')
      assert.match(error.message, /bulk-loaded/)
      assert.match(error.hint ?? '', /replay --bulk/)
      return true
    })
  const active = await env.admin.query(`SELECT version FROM ${env.config.names.versionsTable} WHERE active`)
  assert.deepEqual(active.rows, [{ version: 'v1' }])

  const first = await buildVectorIndex(env.owner, bulk, { maintenanceWorkMem: '64MB', parallelWorkers: 2 })
  assert.equal(first.built, true)
  assert.equal((await buildVectorIndex(env.owner, bulk)).built, false, 'a second build is a no-op')
  assert.deepEqual(await vectorIndexes(env, bulk), await vectorIndexes(env, incremental))
  assert.match(
    (await vectorIndexes(env, bulk))[0],
    /USING hnsw \(embedding vector_cosine_ops\) WITH \(m='16', ef_construction='64'\)/,
  )

  assert.deepEqual(await contents(env, bulk), await contents(env, incremental))
  for (let q = 0; q < 10; q++) {
    const query = vectorOf(10_000 + q)
    assert.deepEqual(await topK(env, bulk, query, 10), await topK(env, incremental, query, 10), `query ${q}`)
  }

  await promoteVersion(env.owner, bulk)
  const now = await env.admin.query(`SELECT version, index_state FROM ${env.config.names.versionsTable} WHERE active`)
  assert.deepEqual(now.rows, [{ version: 'bulk', index_state: 'ready' }])
  await assert.rejects(buildVectorIndex(env.owner, bulk, { maintenanceWorkMem: '1; DROP' }), /maintenance-work-mem/)
})

test("an index build holds only its own version: the schema's other versions migrate while it runs", async (t) => {
  const env = await createSinkEnv(t, { dims: DIMS })
  const bulk = resolveSinkConfig(inputOf(env, { version: 'building', deferIndex: true }))
  await migrate(env.owner, bulk)
  // Another session holds the table in a mode CREATE INDEX waits for, so the build stays in progress.
  const blocker = await connect(t, ADMIN_URL)
  await blocker.query('BEGIN')
  // Whatever fails below, the blocker lets go: left open, its lock would stall this test's cleanup
  // (DROP OWNED) and, through the database row that holds, every other session's bootstrap.
  let timer: NodeJS.Timeout | undefined
  try {
    await blocker.query(`LOCK TABLE ${bulk.names.chunkTable} IN SHARE ROW EXCLUSIVE MODE`)
    const builder = await connect(t, env.ownerUrl)
    const building = buildVectorIndex(builder, bulk, { maintenanceWorkMem: '64MB', parallelWorkers: 0 })
    building.catch(() => {})
    for (let i = 0; ; i++) {
      const waiting = await env.admin.query(
        `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE INDEX%' AND query LIKE $1`,
        [`%${bulk.names.chunkTableName}%`],
      )
      if (waiting.rowCount) break
      assert.ok(i < 600, 'the build to wait on the table lock')
      await new Promise((r) => setTimeout(r, 50))
    }
    // Meanwhile a new version migrates (the schema's migration lock is free); before, it waited for the build.
    const other = resolveSinkConfig(inputOf(env, { version: 'next' }))
    const migrated = await Promise.race([
      migrate(env.owner, other).then(() => 'migrated'),
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('still waiting after 10 s'), 10_000))),
    ])
    assert.deepEqual(await vectorIndexes(env, bulk), [], 'the build is still held')
    await blocker.query('ROLLBACK')
    assert.equal(migrated, 'migrated')
    assert.equal((await vectorIndexes(env, other)).length, 1)
    assert.equal((await building).built, true)
  } finally {
    clearTimeout(timer)
    await blocker.query('ROLLBACK').catch(() => {})
  }
  assert.equal((await vectorIndexes(env, bulk)).length, 1)
})
