// Smoke: pgvector works on the configured PostgreSQL: an HNSW index answers a nearest-neighbour query.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import pgvector from 'pgvector/pg'
import { checkPostgres } from '../../src/config/services.ts'
import { endpoints, uniqueName } from '../support/stack.ts'

test('postgres: pgvector nearest neighbours through an HNSW index', async (t) => {
  await checkPostgres(endpoints.postgresUrl)
  const client = new pg.Client({ connectionString: endpoints.postgresUrl })
  await client.connect()
  await client.query('CREATE EXTENSION IF NOT EXISTS vector')
  await pgvector.registerTypes(client)
  const schema = uniqueName('smoke').replace(/-/g, '_')
  await client.query(`CREATE SCHEMA ${schema}`)
  t.after(async () => {
    await client.query(`DROP SCHEMA ${schema} CASCADE`)
    await client.end()
  })

  await client.query(`CREATE TABLE ${schema}.items (id int PRIMARY KEY, embedding vector(3))`)
  await client.query(`CREATE INDEX ON ${schema}.items USING hnsw (embedding vector_cosine_ops)`)
  const rows: [number, number[]][] = [
    [1, [1, 0, 0]],
    [2, [0, 1, 0]],
    [3, [0.9, 0.1, 0]],
    [4, [0, 0, 1]],
  ]
  for (const [id, v] of rows) {
    await client.query(`INSERT INTO ${schema}.items VALUES ($1, $2)`, [id, pgvector.toSql(v)])
  }
  await client.query('BEGIN')
  await client.query('SET LOCAL enable_seqscan = off')
  const plan = await client.query(`EXPLAIN SELECT id FROM ${schema}.items ORDER BY embedding <=> $1 LIMIT 2`, [
    pgvector.toSql([1, 0.05, 0]),
  ])
  const { rows: nearest } = await client.query(
    `SELECT id, embedding <=> $1 AS distance FROM ${schema}.items ORDER BY embedding <=> $1 LIMIT 2`,
    [pgvector.toSql([1, 0.05, 0])],
  )
  await client.query('COMMIT')
  assert.match(plan.rows.map((r) => r['QUERY PLAN']).join('\n'), /Index Scan using .*hnsw|items_embedding_idx/)
  assert.deepEqual(
    nearest.map((r) => r.id),
    [1, 3],
  )
  assert.ok(nearest[0].distance < nearest[1].distance)
})
