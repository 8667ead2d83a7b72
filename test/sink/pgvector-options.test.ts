// pgvector options per topology version: halfvec storage, HNSW parameters and IVFFlat. Each version's
// table and index are created as configured, the sink writes into them, the query casts to the column
// type so the index serves it, and a version's options cannot change after it exists.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { activateVersion, grantAnalyst, migrate } from '../../src/sink/migrations.ts'
import { resolveSinkConfig, type SinkConfig, type SinkConfigInput } from '../../src/sink/config.ts'
import { BatchWriter, buildBatch, claimPartitions } from '../../src/sink/batch-writer.ts'
import type { ChunkRow } from '../../src/sink/chunk-codec.ts'
import { nearestNeighbourSql, nearestNeighbours } from '../../src/sink/query.ts'
import { connect, createRoles, createSinkEnv, roleUrl, type SinkEnv } from './support.ts'

const DIMS = 8

/** Deterministic, distinct, never-zero vectors. */
function vectorOf(i: number): number[] {
  return Array.from({ length: DIMS }, (_, d) => Math.sin(i * 7.1 + d * 1.3) + (d === i % DIMS ? 2 : 0))
}

function chunk(config: SinkConfig, i: number): ChunkRow {
  const id = `c${i}`
  return {
    chunkId: id,
    entityType: 'doc',
    entityKey: id,
    chunkIndex: 0,
    content: id,
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
    sourceTimestampMs: Date.now() - 1000,
    topology: config.topology,
    topologyVersion: config.version,
    chunker: 'fixed',
    embeddingModel: 'm',
    emittedAtMs: Date.now(),
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

async function write(sink: pg.Client, config: SinkConfig, count: number): Promise<void> {
  const token = randomUUID()
  const topic = `${config.version}-topic`
  await claimPartitions(sink, config.names, topic, [{ partition: 0, initial: 0n, ownerToken: token }])
  await new BatchWriter(config.names, 'test').write(
    sink,
    buildBatch(
      topic,
      [{ partition: 0, expected: 0n, next: BigInt(count), ownerToken: token }],
      Array.from({ length: count }, (_, i) => ({ kind: 'upsert' as const, row: chunk(config, i) })),
    ),
  )
}

async function indexDefs(env: SinkEnv, config: SinkConfig): Promise<string> {
  const rows = await env.admin.query<{ indexdef: string }>(
    `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`,
    [config.names.schema, config.names.chunkTableName],
  )
  return rows.rows.map((r) => r.indexdef).join('\n')
}

async function columnType(env: SinkEnv, config: SinkConfig): Promise<string> {
  const rows = await env.admin.query<{ type: string }>(
    `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'embedding'`,
    [config.names.chunkTable],
  )
  return rows.rows[0].type
}

/** The plan of the query command's SQL with sequential scans off: which index serves it, if any. */
async function plan(client: pg.Client, config: SinkConfig, storage: 'vector' | 'halfvec'): Promise<string> {
  const { text, values } = nearestNeighbourSql({
    view: config.names.chunkTable,
    distance: config.distance,
    vector: vectorOf(3),
    filter: { columns: [], metadata: {} },
    k: 5,
    storage,
  })
  await client.query('BEGIN')
  try {
    await client.query('SET LOCAL enable_seqscan = off')
    const explained = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`, values)
    return explained.rows.map((r) => r['QUERY PLAN']).join('\n')
  } finally {
    await client.query('ROLLBACK')
  }
}

test('pgvector options: halfvec + HNSW(m, ef_construction) and vector + IVFFlat tables are created as configured, written, and queried through their index', async (t) => {
  const env = await createSinkEnv(t, { dims: DIMS })
  const sink = await connect(t, env.sinkUrl)

  const half = resolveSinkConfig(
    inputOf(env, { version: 'half', storage: 'halfvec', hnsw: { m: 8, efConstruction: 40 } }),
  )
  assert.deepEqual(await migrate(env.owner, half), { applied: [], createdVersion: true, activated: false })
  assert.equal(await columnType(env, half), `halfvec(${DIMS})`)
  assert.match(
    await indexDefs(env, half),
    /USING hnsw \(embedding halfvec_cosine_ops\) WITH \(m='8', ef_construction='40'\)/,
  )

  const ivf = resolveSinkConfig(
    inputOf(env, { version: 'ivf', distance: 'l2', index: 'ivfflat', ivfflat: { lists: 2 } }),
  )
  await migrate(env.owner, ivf)
  assert.equal(await columnType(env, ivf), `vector(${DIMS})`)
  const ivfDefs = await indexDefs(env, ivf)
  // vector_l2_ops is vector's default operator class: pg_indexes leaves it out.
  assert.match(ivfDefs, /USING ivfflat \(embedding\) WITH \(lists='2'\)/)
  assert.doesNotMatch(ivfDefs, /USING hnsw/)

  const registered = await env.admin.query(
    `SELECT version, storage, index_method, ivfflat_lists FROM ${env.config.names.versionsTable} ORDER BY version`,
  )
  assert.deepEqual(registered.rows, [
    { version: 'half', storage: 'halfvec', index_method: 'hnsw', ivfflat_lists: null },
    { version: 'ivf', storage: 'vector', index_method: 'ivfflat', ivfflat_lists: 2 },
    { version: 'v1', storage: 'vector', index_method: 'hnsw', ivfflat_lists: null },
  ])

  // The sink writes vectors into a halfvec column unchanged (binary16 keeps these values to ~3 digits).
  await write(sink, half, 30)
  await write(sink, ivf, 30)
  const stored = await env.admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${half.names.chunkTable}`)
  assert.equal(stored.rows[0].n, '30')

  // The vector index serves the query command's SQL for both column types.
  assert.match(await plan(env.admin, half, 'halfvec'), new RegExp(`Index Scan using ${half.names.indexNames.hnsw}`))
  assert.match(await plan(env.admin, ivf, 'vector'), new RegExp(`Index Scan using ${ivf.names.indexNames.ivfflat}`))

  // Through the view, as `ragstream query` runs it (the column type is looked up): exact match first.
  // Activating a version with another column type replaces the views; the analyst keeps reading them.
  const analystRole = `rs_analyst_${env.suffix}`
  await createRoles(t, env.admin, [analystRole])
  await grantAnalyst(env.owner, env.config, analystRole, { classifications: ['*'], tenants: ['*'] })
  const analyst = await connect(t, roleUrl(analystRole))
  for (const config of [half, ivf]) {
    await activateVersion(env.owner, config)
    const rows = await nearestNeighbours(analyst, {
      view: config.names.view,
      distance: config.distance,
      vector: vectorOf(3),
      filter: { columns: [], metadata: {} },
      k: 5,
    })
    assert.equal(rows.length, 5, config.version)
    assert.equal(rows[0].chunk_id, 'c3', config.version)
  }
})

test('pgvector options are fixed per version, validated with the field named', async (t) => {
  const env = await createSinkEnv(t, { dims: DIMS, storage: 'halfvec', index: 'ivfflat', ivfflat: { lists: 3 } })
  const again = (more: Partial<SinkConfigInput>) =>
    migrate(
      env.owner,
      resolveSinkConfig(inputOf(env, { version: 'v1', storage: 'halfvec', index: 'ivfflat', ...more })),
    )
  const field = (path: string) => (error: Error & { code?: string; problems?: { path: string }[] }) => {
    assert.equal(error.code, 'RS_CONFIG_INVALID')
    assert.deepEqual(
      error.problems!.map((p) => p.path),
      [path],
    )
    return true
  }
  await again({ ivfflat: { lists: 3 } })
  await assert.rejects(again({ storage: 'vector', ivfflat: { lists: 3 } }), field('/sink/storage'))
  await assert.rejects(again({ ivfflat: { lists: 4 } }), field('/sink/ivfflat/lists'))
  await assert.rejects(again({ index: 'hnsw' }), field('/sink/index'))

  // pgvector indexes up to 2000 dimensions of vector and 4000 of halfvec.
  assert.throws(() => resolveSinkConfig(inputOf(env, { dims: 3072 })), field('/sink/dims'))
  assert.equal(resolveSinkConfig(inputOf(env, { dims: 3072, storage: 'halfvec' })).dims, 3072)
  assert.throws(() => resolveSinkConfig(inputOf(env, { storage: 'float8' as 'vector' })), field('/sink/storage'))
  assert.throws(() => resolveSinkConfig(inputOf(env, { index: 'diskann' as 'hnsw' })), field('/sink/index'))
  assert.throws(() => resolveSinkConfig(inputOf(env, { ivfflat: { lists: 0 } })), field('/sink/ivfflat/lists'))
})
