// Table resets of a CDC table under the test driver (src/operators/table-reset.ts): a TRUNCATE removes
// every row changed before it on every partition, and nothing written after it; a completed blocking
// snapshot removes the rows it did not read again; incremental snapshots and rows without lineage
// behave as documented (docs/cdc.md). Each partition's reset writes its audit event (TRUNCATED,
// SNAPSHOT_RESET) with the rows it removed, to the table's audit topic.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { cdcTableDecoder } from '../../src/cdc/table-decoder.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import type { AuditEventValue } from '../../src/governance/audit.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'

const TOPIC = 'db.public.items'
const AUDIT = 'resets.audit'

type Flag = 'first' | 'true' | 'last_in_data_collection' | 'last' | 'incremental' | 'false'

/** A Debezium JSON envelope (schemaless) as the connector writes it. */
function envelope(
  op: 'c' | 'u' | 'd' | 'r' | 't',
  lsn: number,
  row: Record<string, unknown> | null,
  flag: Flag = 'false',
) {
  return {
    before: op === 'd' ? row : null,
    after: op === 'd' || op === 't' ? null : row,
    source: { ts_ms: 1_000 + lsn, lsn, schema: 'public', table: 'items', snapshot: op === 'r' ? flag : 'false' },
    op,
    ts_ms: 1_000 + lsn,
  }
}

function setup(partitions: number, options: { lineage?: boolean } = {}) {
  const b = new TopologyBuilder({ applicationId: 'resets' })
  const decoder = cdcTableDecoder(
    new DebeziumDecoder({ valueFormat: 'json' }),
    options.lineage === false ? { lineageField: false } : {},
  )
  b.cdcTable<Record<string, unknown>>(TOPIC, { name: 'items', ...decoder, audit: { topic: AUDIT } })
    .mapValues((row) => ({ id: row.id, name: row.name }))
    .to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions })
  const key = (id: number) => JSON.stringify({ id })
  return {
    driver,
    change: (op: 'c' | 'u' | 'd', id: number, lsn: number) =>
      driver.pipe(TOPIC, key(id), envelope(op, lsn, { id, name: `item ${id} @${lsn}` })),
    read: (id: number, lsn: number, flag: Flag) =>
      driver.pipe(TOPIC, key(id), envelope('r', lsn, { id, name: `item ${id} @${lsn}` }, flag)),
    truncate: (lsn: number, partition = 0) => driver.pipe(TOPIC, null, envelope('t', lsn, null), { partition }),
    /** The output table's keys (ids), sorted. */
    ids: () => [...driver.readTable('out').keys()].map(Number).sort((a, b) => a - b),
    /** The table's own rows (ids), reserved state excluded. */
    stored: () =>
      [...driver.readStore('items').keys()]
        .filter((k) => !k.startsWith('\u0000'))
        .map(Number)
        .sort((a, b) => a - b),
    /** The audit events written since the last call (JSON: the table's audit option has no encoder). */
    audits: () => driver.readOutput(AUDIT).map((r) => ({ ...(r.value as AuditEventValue), key: r.key })),
  }
}

test('a TRUNCATE removes every row of the table on every partition, downstream too; nothing is dead-lettered', async () => {
  const t = setup(4)
  for (let id = 1; id <= 12; id++) await t.change('c', id, 100 + id)
  assert.deepEqual(t.ids(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  const partitions = new Set(t.driver.readOutput('out').map((r) => r.partition))
  assert.ok(partitions.size > 1, 'the rows live on several partitions')
  await t.truncate(500, 2)
  assert.deepEqual(t.ids(), [])
  assert.deepEqual(t.stored(), [])
  const deletes = t.driver.readOutput('out').filter((r) => r.value === null)
  assert.equal(deletes.length, 12, 'one delete downstream per row')
  assert.deepEqual(t.driver.readDeadLetters(), [])
  // The table lives on after a truncate.
  await t.change('c', 3, 600)
  assert.deepEqual(t.ids(), [3])
})

test('TRUNCATE inside a transaction: rows written before it go, rows written after it stay (source positions)', async () => {
  const t = setup(2)
  await t.change('c', 1, 100)
  await t.change('c', 2, 110)
  // BEGIN; INSERT 5; TRUNCATE; INSERT 6; COMMIT — and the truncate reaches the table after the insert of 6.
  await t.driver.pipeBatch([
    { topic: TOPIC, key: JSON.stringify({ id: 5 }), value: envelope('c', 200, { id: 5, name: 'pre' }) },
    { topic: TOPIC, key: null, value: envelope('t', 210, null), partition: 1 },
    { topic: TOPIC, key: JSON.stringify({ id: 6 }), value: envelope('c', 220, { id: 6, name: 'post' }) },
  ])
  assert.deepEqual(t.ids(), [6])
  assert.deepEqual(t.stored(), [6])
})

test('a change older than a truncate that arrives after it (a lagging partition, a redelivery) is dropped', async () => {
  const t = setup(3)
  await t.change('c', 1, 100)
  await t.truncate(300)
  await t.change('c', 2, 250) // committed before the truncate, seen after it
  await t.change('u', 1, 260)
  assert.deepEqual(t.ids(), [])
  await t.change('c', 2, 310) // after the truncate: a row like any other
  assert.deepEqual(t.ids(), [2])
  // A second, later truncate wins over the first.
  await t.truncate(400)
  await t.change('c', 7, 350)
  assert.deepEqual(t.ids(), [])
})

test('a re-snapshot removes the rows it did not read again (deleted while no connector ran); later changes stay', async () => {
  const t = setup(1)
  await t.read(1, 100, 'first')
  await t.read(2, 100, 'true')
  await t.read(3, 100, 'last_in_data_collection')
  await t.change('c', 4, 150)
  assert.deepEqual(t.ids(), [1, 2, 3, 4])
  // Rows 2 and 4 deleted and 5 inserted while no connector ran; a new snapshot reads 1, 3 and 5.
  await t.read(1, 500, 'first')
  await t.read(3, 500, 'true')
  assert.deepEqual(t.ids(), [1, 2, 3, 4], 'nothing is removed while the snapshot runs')
  await t.read(5, 500, 'last')
  assert.deepEqual(t.ids(), [1, 3, 5])
  await t.change('c', 6, 510)
  assert.deepEqual(t.ids(), [1, 3, 5, 6])
  assert.deepEqual(t.driver.readDeadLetters(), [])
})

test('a snapshot without a last read (a one-row table read first) completes at the next change of the table', async () => {
  const t = setup(1)
  await t.change('c', 1, 100)
  await t.change('c', 2, 110)
  await t.read(2, 500, 'first')
  assert.deepEqual(t.ids(), [1, 2])
  await t.change('c', 9, 510)
  assert.deepEqual(t.ids(), [2, 9])
})

test('a snapshot on several partitions: each partition removes what its own run did not read again', async () => {
  const t = setup(3)
  for (let id = 1; id <= 9; id++) await t.change('c', id, 100 + id)
  // A blocking snapshot reads every row but 4 and 8; its last read lands on one partition.
  const kept = [1, 2, 3, 5, 6, 7, 9]
  for (const [i, id] of kept.entries())
    await t.read(id, 500, i === 0 ? 'first' : i === kept.length - 1 ? 'last' : 'true')
  // Streaming resumes: every partition sees a change after its run.
  for (const id of [11, 12, 13, 14, 15, 16]) await t.change('c', id, 600 + id)
  assert.deepEqual(t.ids(), [...kept, 11, 12, 13, 14, 15, 16])
})

test('a decoder wrapper that drops the CDC marks makes snapshots remove nothing, never too much', async () => {
  const b = new TopologyBuilder({ applicationId: 'resets' })
  const inner = cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }))
  b.cdcTable<Record<string, unknown>>(TOPIC, {
    name: 'items',
    // Keeps the marks of every other record only: reads and changes look alike to the table.
    decode: (key, value, record) => {
      const decoded = inner.decode(key, value, record)
      return record.offset % 2n === 0n ? decoded : { key: decoded.key, value: decoded.value }
    },
  }).to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  const key = (id: number) => JSON.stringify({ id })
  for (const [id, flag] of [
    [1, 'first'],
    [2, 'true'],
    [3, 'true'],
    [4, 'true'],
    [5, 'last'],
  ] as const)
    await driver.pipe(TOPIC, key(id), envelope('r', 100, { id, name: `item ${id}` }, flag))
  await driver.pipe(TOPIC, key(6), envelope('c', 200, { id: 6, name: 'item 6' }))
  assert.deepEqual(
    [...driver.readTable('out').keys()].map(Number).sort((x, y) => x - y),
    [1, 2, 3, 4, 5, 6],
  )
})

test('incremental snapshot reads never remove anything', async () => {
  const t = setup(1)
  await t.change('c', 1, 100)
  await t.change('c', 2, 110)
  await t.read(1, 500, 'incremental')
  await t.change('c', 3, 520)
  assert.deepEqual(t.ids(), [1, 2, 3])
})

test('without lineage (lineageField: false) a truncate still removes every row; a snapshot removes nothing', async () => {
  const t = setup(2, { lineage: false })
  await t.change('c', 1, 100)
  await t.change('c', 2, 110)
  await t.read(1, 500, 'first')
  await t.read(2, 500, 'last')
  await t.change('c', 3, 520)
  assert.deepEqual(t.ids(), [1, 2, 3])
  await t.truncate(600)
  assert.deepEqual(t.ids(), [])
})

test('a TRUNCATE writes one TRUNCATED audit event per partition: rows removed there, table, LSN, source time, no content', async () => {
  const t = setup(4)
  for (let id = 1; id <= 12; id++) await t.change('c', id, 100 + id)
  assert.deepEqual(t.audits(), [], 'changes are not audited')
  await t.truncate(500, 2)
  const audits = t.audits()
  assert.deepEqual(
    audits.map((a) => a.counts.partition).sort(),
    [0, 1, 2, 3],
    'one event per partition, also where nothing was removed',
  )
  assert.equal(
    audits.reduce((n, a) => n + a.counts.rows_removed, 0),
    12,
  )
  for (const a of audits) {
    assert.equal(a.kind, 'TRUNCATED')
    assert.equal(a.topology, 'resets')
    assert.equal(a.reason, 'items (public.items)')
    assert.equal(a.counts.source_position, 500)
    assert.equal(a.at_ms, 1_500, 'the source time of the truncate')
    assert.equal(a.key, a.event_id)
    assert.deepEqual([a.subject_hash, a.entity_key_hash, a.request_id], [null, null, null])
    assert.doesNotMatch(JSON.stringify(a), /item \d/, 'no row content')
  }
  assert.equal(new Set(audits.map((a) => a.event_id)).size, 4)
  // Connect redelivers the truncate (a crash before its offsets were flushed): nothing left to remove,
  // and the same event ids, so the sink keeps the first events.
  await t.truncate(500, 1)
  const again = t.audits()
  assert.deepEqual(
    again.map((a) => a.counts.rows_removed),
    [0, 0, 0, 0],
  )
  assert.deepEqual(new Set(again.map((a) => a.event_id)), new Set(audits.map((a) => a.event_id)))
})

test('the TRUNCATED count is of rows actually removed: rows written after the truncate, and rows a racing truncate took, are not counted', async () => {
  const t = setup(2)
  await t.change('c', 1, 100)
  await t.change('c', 2, 110)
  // BEGIN; INSERT 5; TRUNCATE; INSERT 6; COMMIT: 1, 2 and 5 removed, 6 stays.
  await t.driver.pipeBatch([
    { topic: TOPIC, key: JSON.stringify({ id: 5 }), value: envelope('c', 200, { id: 5, name: 'pre' }) },
    { topic: TOPIC, key: null, value: envelope('t', 210, null), partition: 1 },
    { topic: TOPIC, key: JSON.stringify({ id: 6 }), value: envelope('c', 220, { id: 6, name: 'post' }) },
  ])
  assert.deepEqual(t.ids(), [6])
  const seen: ReturnType<typeof t.audits> = []
  const total = (position: number) => {
    seen.push(...t.audits())
    return seen.filter((a) => a.counts.source_position === position).reduce((n, a) => n + a.counts.rows_removed, 0)
  }
  assert.equal(total(210), 3)
  // Two truncates read in one batch: the second lists rows the first has not deleted yet, but each row
  // is counted once, by the truncate that removed it.
  await t.change('c', 7, 300)
  await t.change('c', 8, 310)
  await t.driver.pipeBatch([
    { topic: TOPIC, key: null, value: envelope('t', 400, null), partition: 0 },
    { topic: TOPIC, key: null, value: envelope('t', 410, null), partition: 1 },
  ])
  assert.deepEqual(t.ids(), [])
  assert.equal(total(400) + total(410), 3, 'rows 6, 7 and 8, once each')
})

test('a completed snapshot that removed rows writes SNAPSHOT_RESET with the count; one that removed nothing writes nothing', async () => {
  const t = setup(1)
  await t.read(1, 100, 'first')
  await t.read(2, 100, 'true')
  await t.read(3, 100, 'last_in_data_collection')
  assert.deepEqual(t.audits(), [], 'the first snapshot removed nothing')
  await t.change('c', 4, 150)
  // Rows 2 and 4 deleted while no connector ran; a new snapshot reads 1, 3 and 5.
  await t.read(1, 500, 'first')
  await t.read(3, 500, 'true')
  await t.read(5, 500, 'last')
  assert.deepEqual(t.ids(), [1, 3, 5])
  const [audit, ...more] = t.audits()
  assert.deepEqual(more, [])
  assert.equal(audit.kind, 'SNAPSHOT_RESET')
  assert.equal(audit.reason, 'items')
  assert.deepEqual(audit.counts, { rows_removed: 2, partition: 0, snapshot_offset: 4 })
  assert.equal(audit.at_ms, 1_500, 'the source time of the read that completed the snapshot')
})
