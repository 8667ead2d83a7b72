// Forgetting in Postgres: a DELETION_APPLIED audit event deletes the subject's rows in every version
// table in the transaction that writes the audit row; a replayed older upsert cannot resurrect them;
// the receipt sums the counts and is recorded exactly once; analysts cannot read the audit table.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { auditEvent } from '../../src/governance/audit.ts'
import { hashSubject } from '../../src/governance/subject.ts'
import { BatchWriter, buildBatch, claimPartitions } from '../../src/sink/batch-writer.ts'
import type { AuditRow, ChunkRow, SinkEvent } from '../../src/sink/chunk-codec.ts'
import { resolveSinkConfig, type SinkConfig } from '../../src/sink/config.ts'
import { awaitForgetReceipt } from '../../src/sink/forget-receipt.ts'
import { grantAnalyst, migrate } from '../../src/sink/migrations.ts'
import { connect, createRoles, createSinkEnv, roleUrl } from './support.ts'

function row(config: SinkConfig, id: string, subjects: string[], offset: bigint): ChunkRow {
  return {
    chunkId: id,
    entityType: 'ticket',
    entityKey: id,
    chunkIndex: 0,
    content: `text ${id}`,
    contentHash: id,
    embedding: `[${Array(config.dims).fill(0.5).join(',')}]`,
    metadata: '{}',
    classification: 'internal',
    tenant: 'acme',
    region: 'eu',
    subjects: JSON.stringify(subjects),
    policyVersion: 'p@1',
    sourceTopic: 'cdc',
    sourcePartition: 0,
    sourceOffset: String(offset),
    sourcePosition: null,
    sourceTimestampMs: Date.now(),
    topology: config.topology,
    topologyVersion: config.version,
    chunker: 'fixed',
    embeddingModel: 'm',
    emittedAtMs: Date.now(),
    chunkTopic: config.topic,
    chunkPartition: 0,
    chunkOffset: offset,
  }
}

function applied(
  config: SinkConfig,
  requestId: string,
  subject: string,
  partition: number,
  partitions: number,
  chunks: number,
  offset: bigint,
): AuditRow {
  const event = auditEvent({
    kind: 'DELETION_APPLIED',
    topology: 'proc',
    topologyVersion: 'v1',
    requestId,
    subjectHash: hashSubject(subject),
    counts: { chunks_tombstoned: chunks, partition, partitions },
    atMs: Date.now(),
    identity: `${requestId}\u0000${partition}`,
  })
  return {
    eventId: event.event_id,
    kind: event.kind,
    topology: event.topology,
    topologyVersion: event.topology_version,
    requestId,
    subjectHash: event.subject_hash,
    entityKeyHash: null,
    reason: null,
    counts: JSON.stringify(event.counts),
    atMs: event.at_ms,
    topic: config.topic,
    partition: 0,
    offset,
  }
}

test("forget in the sink: every version loses the subject in the audit row's transaction, nothing resurrects it, one receipt per request, analysts cannot read audit", async (t) => {
  const env = await createSinkEnv(t, { dims: 4 })
  const v1 = env.config
  const n = v1.names
  const v2 = resolveSinkConfig({
    topology: v1.topology,
    version: 'v2',
    topic: `${v1.topic}.v2`,
    dims: 4,
    schema: n.schema,
    viewSchema: n.viewSchema,
    ownerRole: n.ownerRole,
    sinkRole: n.sinkRole,
  })
  await migrate(env.owner, v2)
  const sink = await connect(t, env.sinkUrl)
  const writers = new Map([
    [v1, new BatchWriter(v1.names, 'test')],
    [v2, new BatchWriter(v2.names, 'test')],
  ])
  const tokens = new Map<SinkConfig, string>()
  const expected = new Map<SinkConfig, bigint>()
  for (const config of [v1, v2]) {
    tokens.set(config, randomUUID())
    expected.set(config, 0n)
    await claimPartitions(sink, config.names, config.topic, [
      { partition: 0, initial: 0n, ownerToken: tokens.get(config)! },
    ])
  }
  const write = async (config: SinkConfig, events: SinkEvent[]) => {
    const next = expected.get(config)! + 10n
    const outcome = await writers
      .get(config)!
      .write(
        sink,
        buildBatch(
          config.topic,
          [{ partition: 0, expected: expected.get(config)!, next, ownerToken: tokens.get(config)! }],
          events,
        ),
      )
    assert.equal(outcome.status, 'committed')
    expected.set(config, next)
  }
  for (const config of [v1, v2]) {
    await write(config, [
      { kind: 'upsert', row: row(config, 'a#0', ['customer:42'], 1n) },
      { kind: 'upsert', row: row(config, 'a#1', ['customer:42'], 2n) },
      { kind: 'upsert', row: row(config, 'b#0', ['customer:42', 'customer:7'], 3n) },
      { kind: 'upsert', row: row(config, 'c#0', ['customer:7'], 4n) },
    ])
  }
  const count = async (config: SinkConfig) =>
    Number(
      (await env.admin.query(`SELECT count(*) FROM ${config.names.chunkTable} WHERE subjects @> ARRAY['customer:42']`))
        .rows[0].count,
    )
  assert.equal(await count(v1), 3)

  // Partition 0 of a 2-partition processor applied the request (v2's processor writes to v2's topic).
  const requestedAtMs = Date.now() - 50
  const sinceDb = (await env.admin.query<{ now: Date }>('SELECT clock_timestamp() AS now')).rows[0].now
  await write(v2, [{ kind: 'audit', row: applied(v2, 'req-9', 'customer:42', 0, 2, 2, 20n) }])
  assert.equal(await count(v1), 0, 'every version, not only the writing one')
  assert.equal(await count(v2), 0)
  assert.equal(
    Number((await env.admin.query(`SELECT count(*) FROM ${v1.names.chunkTable}`)).rows[0].count),
    1,
    'customer:7 alone stays',
  )
  const marked = await env.admin.query(
    `SELECT chunk_id FROM ${v1.names.tombstoneTable} WHERE subject_hashes @> ARRAY[$1] AND removed_at IS NOT NULL ORDER BY 1`,
    [hashSubject('customer:42')],
  )
  assert.deepEqual(
    marked.rows.map((r) => r.chunk_id),
    ['a#0', 'a#1', 'b#0'],
  )

  // A replay of the old upserts (offset below the deletion's mark) does not resurrect them.
  await write(v1, [{ kind: 'upsert', row: row(v1, 'a#0', ['customer:42'], 1n) }])
  assert.equal(await count(v1), 0)

  // Not confirmed until every partition applied it.
  const source = { topic: 'governance.deletions', partition: 0, offset: 5n }
  await assert.rejects(
    awaitForgetReceipt(env.owner, n, {
      requestId: 'req-9',
      subject: 'customer:42',
      requestedAtMs,
      source,
      sinceDb,
      timeoutMs: 300,
    }),
    /RS_FORGET_UNCONFIRMED|not confirmed/,
  )
  await write(v2, [{ kind: 'audit', row: applied(v2, 'req-9', 'customer:42', 1, 2, 1, 21n) }])
  const { receipt, recorded } = await awaitForgetReceipt(env.owner, n, {
    requestId: 'req-9',
    subject: 'customer:42',
    requestedAtMs,
    source,
    sinceDb,
    timeoutMs: 10_000,
  })
  assert.equal(recorded, true)
  assert.equal(receipt.chunksTombstoned, 3)
  assert.deepEqual(receipt.rowsDeleted, {
    [`${n.schema}.${v1.names.chunkTableName}`]: 3,
    [`${n.schema}.${v2.names.chunkTableName}`]: 3,
  })
  assert.equal(receipt.remaining, 0)
  assert.ok(receipt.confirmedAtMs >= requestedAtMs)
  // The verification query, run as the sink role (RLS lets it see every row), returns 0.
  assert.equal(Number((await sink.query(receipt.verification.sql, ['customer:42'])).rows[0].remaining), 0)
  assert.equal(Number((await sink.query(receipt.verification.sql, ['customer:7'])).rows[0].remaining), 2)

  const again = await awaitForgetReceipt(env.owner, n, {
    requestId: 'req-9',
    subject: 'customer:42',
    requestedAtMs,
    source,
    sinceDb,
    timeoutMs: 10_000,
  })
  assert.equal(again.recorded, false)
  assert.deepEqual({ ...again.receipt, confirmedAtMs: 0 }, { ...receipt, confirmedAtMs: 0 }, 'the same receipt again')
  const confirmed = await env.admin.query(
    `SELECT counts FROM ${n.auditTable} WHERE request_id = 'req-9' AND kind = 'DELETION_CONFIRMED'`,
  )
  assert.equal(confirmed.rowCount, 1, 'exactly one receipt per request')
  assert.equal(confirmed.rows[0].counts.chunks_tombstoned, 3)
  const audits = JSON.stringify((await env.admin.query(`SELECT * FROM ${n.auditTable}`)).rows)
  assert.doesNotMatch(audits, /customer:42/, 'ids and hashes only')

  // Analysts cannot read the audit table.
  const analyst = `rs_an_${env.suffix}`
  await createRoles(t, env.admin, [analyst])
  await grantAnalyst(env.owner, v1, analyst, { classifications: ['*'], tenants: ['*'] })
  const client = await connect(t, roleUrl(analyst))
  await assert.rejects(client.query(`SELECT * FROM ${n.auditTable}`), /permission denied/)
})
