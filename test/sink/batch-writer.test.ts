// The batch transaction on its own: the source-position guard and the offsets fence.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { BatchWriter, buildBatch, claimPartitions } from '../../src/sink/batch-writer.ts'
import type { ChunkRow } from '../../src/sink/chunk-codec.ts'
import type pg from 'pg'
import { connect, createSinkEnv, readChunks, storedOffsets, type SinkEnv } from './support.ts'

function row(env: SinkEnv, id: string, offset: bigint, content: string): ChunkRow {
  return {
    chunkId: id,
    entityType: 'ticket',
    entityKey: id,
    chunkIndex: 0,
    content,
    contentHash: content,
    embedding: `[${Array(env.config.dims).fill(0.5).join(',')}]`,
    metadata: '{}',
    classification: null,
    tenant: null,
    region: null,
    subjects: '[]',
    policyVersion: null,
    sourceTopic: 'cdc',
    sourcePartition: 0,
    sourceOffset: String(offset),
    sourcePosition: null,
    sourceTimestampMs: Date.now(),
    topology: env.config.topology,
    topologyVersion: 'v1',
    chunker: 'fixed',
    embeddingModel: 'm',
    emittedAtMs: Date.now(),
    chunkTopic: env.config.topic,
    chunkPartition: 0,
    chunkOffset: offset,
  }
}

test('sink: out-of-order delivery of two versions of a chunk leaves the newer; a replayed upsert never resurrects a tombstoned chunk', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const sinkClient = await connect(t, env.sinkUrl)
  const writer = new BatchWriter(env.config.names, 'test')
  const token = crypto.randomUUID()
  await claimPartitions(sinkClient, env.config.names, env.config.topic, [
    { partition: 0, initial: 0n, ownerToken: token },
  ])
  let expected = 0n
  const write = async (events: Parameters<typeof buildBatch>[2]) => {
    const next = expected + 1n
    const outcome = await writer.write(
      sinkClient,
      buildBatch(env.config.topic, [{ partition: 0, expected, next, ownerToken: token }], events),
    )
    assert.equal(outcome.status, 'committed')
    expected = next
  }
  // The newer version (offset 20) arrives first, the older (offset 10) second: the newer stays.
  await write([{ kind: 'upsert', row: row(env, 'x', 20n, 'new') }])
  await write([{ kind: 'upsert', row: row(env, 'x', 10n, 'old') }])
  assert.equal((await readChunks(env.admin, env.config)).get('x')!.content, 'new')
  // Both in one batch, older last: still the newer.
  await write([
    { kind: 'upsert', row: row(env, 'y', 31n, 'new') },
    { kind: 'upsert', row: row(env, 'y', 30n, 'old') },
  ])
  assert.equal((await readChunks(env.admin, env.config)).get('y')!.content, 'new')
  // A tombstone at 40, then a replay of the upsert at 20: stays deleted. A newer upsert (50) re-creates it.
  await write([{ kind: 'tombstone', chunkId: 'x', partition: 0, offset: 40n }])
  await write([{ kind: 'upsert', row: row(env, 'x', 20n, 'new') }])
  assert.equal((await readChunks(env.admin, env.config)).has('x'), false)
  await write([{ kind: 'upsert', row: row(env, 'x', 50n, 'newest') }])
  assert.equal((await readChunks(env.admin, env.config)).get('x')!.content, 'newest')
  // An older tombstone does not delete a newer row.
  await write([{ kind: 'tombstone', chunkId: 'x', partition: 0, offset: 45n }])
  assert.equal((await readChunks(env.admin, env.config)).get('x')!.content, 'newest')
})

test('sink: the offsets fence refuses a batch from a stale owner, and recognises its own landed commit', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const a = await connect(t, env.sinkUrl)
  const writer = new BatchWriter(env.config.names, 'test')
  const { topic } = env.config
  const first = crypto.randomUUID()
  await claimPartitions(a, env.config.names, topic, [{ partition: 0, initial: 0n, ownerToken: first }])
  const batch = (token: string, expected: bigint, next: bigint, id: string) =>
    buildBatch(
      topic,
      [{ partition: 0, expected, next, ownerToken: token }],
      [{ kind: 'upsert', row: row(env, id, next - 1n, id) }],
    )
  assert.equal((await writer.write(a, batch(first, 0n, 5n, 'one'))).status, 'committed')
  // The same batch again (its COMMIT reply was lost): recognised as already committed, nothing written twice.
  const again = await writer.write(a, batch(first, 0n, 5n, 'one'))
  assert.deepEqual(again, { status: 'committed', upserted: 0, deleted: 0, alreadyCommitted: true })
  // Another instance claims the partition; the first one's next batch is fenced even though the offset still matches.
  const second = crypto.randomUUID()
  const stored = await claimPartitions(a, env.config.names, topic, [{ partition: 0, initial: 0n, ownerToken: second }])
  assert.equal(stored.get(0), 5n)
  assert.deepEqual(await writer.write(a, batch(first, 5n, 9n, 'zombie')), { status: 'fenced', partitions: [0] })
  // Offsets with gaps are fine: expected is what was stored, not the first offset of the batch.
  assert.equal((await writer.write(a, batch(second, 5n, 9n, 'fresh'))).status, 'committed')
  const rows = await readChunks(env.admin, env.config)
  assert.deepEqual([...rows.keys()].sort(), ['fresh', 'one'])
})

test('sink: a tombstone that removes a row records when and the sha256 of its subjects (the forget proof), never the subjects', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const sink = await connect(t, env.sinkUrl)
  const writer = new BatchWriter(env.config.names, 'test')
  const token = crypto.randomUUID()
  await claimPartitions(sink, env.config.names, env.config.topic, [{ partition: 0, initial: 0n, ownerToken: token }])
  let expected = 0n
  const write = async (events: Parameters<typeof buildBatch>[2]) => {
    const outcome = await writer.write(
      sink,
      buildBatch(env.config.topic, [{ partition: 0, expected, next: expected + 1n, ownerToken: token }], events),
    )
    expected++
    return outcome
  }
  await write([
    { kind: 'upsert', row: { ...row(env, 'p', 1n, 'pii'), subjects: JSON.stringify(['customer:42', 'email:a@b.c']) } },
  ])
  const removed = await write([
    { kind: 'tombstone', chunkId: 'p', partition: 0, offset: 2n },
    { kind: 'tombstone', chunkId: 'never-existed', partition: 0, offset: 3n },
  ])
  assert.ok(
    removed.status === 'committed' && typeof removed.visibleAtMs === 'number',
    'the commit says when it returned',
  )
  assert.deepEqual(
    { ...removed, visibleAtMs: undefined },
    { status: 'committed', upserted: 0, deleted: 1, alreadyCommitted: false, visibleAtMs: undefined },
  )
  // A later tombstone for the already-deleted chunk keeps the proof.
  await write([{ kind: 'tombstone', chunkId: 'p', partition: 0, offset: 4n }])
  const proof = await env.admin.query(
    `SELECT chunk_id, chunk_offset::int, removed_at IS NOT NULL AS removed, subject_hashes FROM ${env.config.names.tombstoneTable} ORDER BY chunk_id`,
  )
  const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex')
  assert.deepEqual(proof.rows, [
    { chunk_id: 'never-existed', chunk_offset: 3, removed: false, subject_hashes: [] },
    { chunk_id: 'p', chunk_offset: 4, removed: true, subject_hashes: [sha('customer:42'), sha('email:a@b.c')] },
  ])
  const forgotten = await env.admin.query(
    `SELECT count(*)::int AS n FROM ${env.config.names.tombstoneTable} WHERE subject_hashes @> ARRAY[$1] AND removed_at IS NOT NULL`,
    [sha('customer:42')],
  )
  assert.equal(forgotten.rows[0].n, 1)
})

test('sink: a row PostgreSQL refuses (a 66 KB chunk id or entity key, over the btree limit) goes to sink_rejects; the rest of the batch commits', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const sinkClient = await connect(t, env.sinkUrl)
  const writer = new BatchWriter(env.config.names, 'test')
  const token = crypto.randomUUID()
  await claimPartitions(sinkClient, env.config.names, env.config.topic, [
    { partition: 0, initial: 0n, ownerToken: token },
  ])
  // Incompressible: TOAST compression cannot bring these under the index entry limit.
  const hugeId = randomBytes(50_000).toString('base64')
  const hugeEntity = { ...row(env, 'big-entity', 3n, 'c'), entityKey: randomBytes(50_000).toString('base64') }
  const outcome = await writer.write(
    sinkClient,
    buildBatch(
      env.config.topic,
      [{ partition: 0, expected: 0n, next: 10n, ownerToken: token }],
      [
        { kind: 'upsert', row: row(env, 'good-1', 1n, 'a') },
        { kind: 'upsert', row: row(env, hugeId, 2n, 'b') },
        { kind: 'upsert', row: hugeEntity },
        { kind: 'tombstone', chunkId: randomBytes(50_000).toString('base64'), partition: 0, offset: 4n },
        { kind: 'upsert', row: row(env, 'good-2', 5n, 'e') },
      ],
    ),
  )
  assert.equal(outcome.status, 'committed')
  assert.equal(outcome.status === 'committed' && outcome.refused?.length, 3)
  const rows = await readChunks(env.admin, env.config)
  assert.deepEqual([...rows.keys()].sort(), ['good-1', 'good-2'])
  const rejects = await env.admin.query<{
    offset: string
    error_code: string
    message: string
    record_key: string
    source: string | null
  }>(
    `SELECT "offset"::text, error_code, message, record_key, source_topic || ':' || source_partition || '@' || source_offset AS source
     FROM ${env.config.names.rejectsTable} ORDER BY "offset"`,
  )
  assert.deepEqual(
    rejects.rows.map((r) => [r.offset, r.source]),
    [
      ['2', 'cdc:0@2'],
      ['3', 'cdc:0@3'],
      ['4', null],
    ],
    "refused upserts name their chunk event's source lineage; a tombstone has none",
  )
  for (const r of rejects.rows) {
    assert.equal(r.error_code, 'RS_RECORD_INVALID')
    assert.match(r.message, /PostgreSQL refused the row \(SQLSTATE 54000\)/)
    assert.ok(r.record_key.length < 300, 'the key is kept as a bounded excerpt')
  }
  const offsets = await env.admin.query(`SELECT next_offset::int AS n FROM ${env.config.names.offsetsTable}`)
  assert.equal(offsets.rows[0].n, 10)
})

test('sink: a claim skips partitions whose offsets row another session holds locked, instead of waiting for it', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const { names, topic } = env.config
  const a = await connect(t, env.sinkUrl)
  const frozen = await connect(t, env.sinkUrl)
  await claimPartitions(a, names, topic, [
    { partition: 0, initial: 0n, ownerToken: crypto.randomUUID() },
    { partition: 1, initial: 0n, ownerToken: crypto.randomUUID() },
  ])
  // An owner stopped inside its batch transaction: it holds partition 1's row.
  await frozen.query('BEGIN')
  await frozen.query(`UPDATE ${names.offsetsTable} SET updated_at = now() WHERE topic = $1 AND partition = 1`, [topic])
  const started = Date.now()
  const claimed = await claimPartitions(a, names, topic, [
    { partition: 0, initial: 0n, ownerToken: crypto.randomUUID() },
    { partition: 1, initial: 0n, ownerToken: crypto.randomUUID() },
    { partition: 2, initial: 7n, ownerToken: crypto.randomUUID() },
  ])
  assert.ok(Date.now() - started < 2000, `the claim did not wait (${Date.now() - started} ms)`)
  assert.deepEqual([...claimed].sort(), [
    [0, 0n],
    [2, 7n],
  ])
  await frozen.query('ROLLBACK')
  const later = await claimPartitions(a, names, topic, [{ partition: 1, initial: 0n, ownerToken: crypto.randomUUID() }])
  assert.deepEqual([...later], [[1, 0n]])
})

/**
 * What the server answers on a real connection: ReadyForQuery, one per finished exchange (a round
 * trip), and ParseComplete, one per statement it parsed.
 */
function roundTrips(client: pg.Client): { readonly count: number; readonly parsed: number } {
  const counter = { count: 0, parsed: 0 }
  const connection = (client as unknown as { connection: { on(event: string, fn: () => void): void } }).connection
  connection.on('readyForQuery', () => counter.count++)
  connection.on('parseComplete', () => counter.parsed++)
  return counter
}

test('sink: a batch of upserts, tombstones and rejects is one round trip, COMMIT included, of a statement prepared once per connection, and commits as one transaction', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const { names, topic } = env.config
  const sink = await connect(t, env.sinkUrl)
  const writer = new BatchWriter(names, 'test')
  const token = crypto.randomUUID()
  await claimPartitions(sink, names, topic, [
    { partition: 0, initial: 0n, ownerToken: token },
    { partition: 1, initial: 0n, ownerToken: token },
  ])
  await writer.write(
    sink,
    buildBatch(
      topic,
      [{ partition: 0, expected: 0n, next: 2n, ownerToken: token }],
      [
        { kind: 'upsert', row: row(env, 'gone', 0n, 'to be deleted') },
        { kind: 'upsert', row: row(env, 'kept', 1n, 'v1') },
      ],
    ),
  )
  const trips = roundTrips(sink)
  const outcome = await writer.write(
    sink,
    buildBatch(
      topic,
      [
        { partition: 0, expected: 2n, next: 5n, ownerToken: token },
        { partition: 1, expected: 0n, next: 1n, ownerToken: token },
      ],
      [
        { kind: 'upsert', row: row(env, 'kept', 3n, 'v2') },
        { kind: 'upsert', row: { ...row(env, 'new', 0n, 'fresh'), chunkPartition: 1 } },
        { kind: 'tombstone', chunkId: 'gone', partition: 0, offset: 4n },
        {
          kind: 'reject',
          row: { topic, partition: 0, offset: 2n, code: 'RS_DECODE_FAILED', message: 'not Avro', key: 'junk' },
        },
      ],
    ),
  )
  assert.equal(trips.count, 1, 'one round trip for the whole batch')
  assert.equal(trips.parsed, 0, 'the statement prepared by the first batch, not parsed again')
  assert.equal(outcome.status, 'committed')
  assert.deepEqual(
    {
      upserted: outcome.status === 'committed' && outcome.upserted,
      deleted: outcome.status === 'committed' && outcome.deleted,
    },
    { upserted: 2, deleted: 1 },
  )
  const rows = await readChunks(env.admin, env.config)
  assert.deepEqual([...rows.keys()].sort(), ['kept', 'new'])
  assert.equal(rows.get('kept')?.content, 'v2')
  assert.deepEqual(
    [...(await storedOffsets(env.admin, env.config))].sort(([a], [b]) => a - b),
    [
      [0, 5n],
      [1, 1n],
    ],
  )
  const tomb = await env.admin.query(`SELECT chunk_id, removed_at IS NOT NULL AS removed FROM ${names.tombstoneTable}`)
  assert.deepEqual(tomb.rows, [{ chunk_id: 'gone', removed: true }])
  const rejects = await env.admin.query(`SELECT record_key FROM ${names.rejectsTable} WHERE topic = $1`, [topic])
  assert.deepEqual(rejects.rows, [{ record_key: 'junk' }])
  // One transaction: every row it wrote carries the same creating transaction id.
  const xmins = await env.admin.query(
    `SELECT xmin::text AS x FROM ${names.chunkTable} UNION SELECT xmin::text FROM ${names.offsetsTable} WHERE topic = $1
     UNION SELECT xmin::text FROM ${names.tombstoneTable} UNION SELECT xmin::text FROM ${names.rejectsTable} WHERE topic = $1`,
    [topic],
  )
  assert.equal(xmins.rowCount, 1, 'rows, offsets, tombstone and reject written by one transaction')
})

test('sink: a one-statement batch waiting on an offsets row that a new owner then claims is fenced and writes nothing; one the holder gives back commits', async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const { names, topic } = env.config
  const zombie = await connect(t, env.sinkUrl)
  const claimer = await connect(t, env.sinkUrl)
  const writer = new BatchWriter(names, 'test')
  const old = crypto.randomUUID()
  await claimPartitions(zombie, names, topic, [
    { partition: 0, initial: 0n, ownerToken: old },
    { partition: 1, initial: 0n, ownerToken: old },
  ])
  const batch = (id: string, expected: bigint) =>
    buildBatch(
      topic,
      [
        { partition: 0, expected, next: expected + 1n, ownerToken: old },
        { partition: 1, expected, next: expected + 1n, ownerToken: old },
      ],
      [{ kind: 'upsert', row: row(env, id, expected, id) }],
    )
  /** Writes `id` while `claimer` holds partition 1's row in an open transaction; `end` finishes that transaction. */
  const raced = async (id: string, expected: bigint, end: 'COMMIT' | 'ROLLBACK') => {
    await claimer.query('BEGIN')
    await claimer.query(`UPDATE ${names.offsetsTable} SET owner_token = $2 WHERE topic = $1 AND partition = 1`, [
      topic,
      crypto.randomUUID(),
    ])
    const pending = writer.write(zombie, batch(id, expected))
    const pid = (zombie as unknown as { processID: number }).processID
    // The batch's statement is waiting for the row lock (its snapshot predates the claim's commit).
    for (let i = 0; ; i++) {
      const waiting = await env.admin.query(
        `SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`,
        [pid],
      )
      if (waiting.rowCount === 1) break
      assert.ok(i < 200, 'the batch never waited for the offsets row lock')
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    await claimer.query(end)
    return pending
  }
  const givenBack = await raced('given-back', 0n, 'ROLLBACK')
  assert.equal(givenBack.status, 'committed', 'the claim rolled back: the row lock was all the batch waited for')
  assert.equal(givenBack.status === 'committed' && givenBack.upserted, 1)
  // Now the claim commits while the batch waits: the batch reads the new owner's token (not its
  // snapshot's) and is fenced on partition 1, and nothing of it lands, not even partition 0's offset.
  assert.deepEqual(await raced('zombie', 1n, 'COMMIT'), { status: 'fenced', partitions: [1] })
  assert.deepEqual([...(await readChunks(env.admin, env.config)).keys()], ['given-back'])
  assert.deepEqual(
    [...(await storedOffsets(env.admin, env.config))].sort(([a], [b]) => a - b),
    [
      [0, 1n],
      [1, 1n],
    ],
  )
})
