// Where a CDC table's reset audit events go (src/operators/audit-outputs.ts), on topologies other than
// the reference ones: the chunk topic of a tail without govern, the audit topic of the govern it feeds,
// its own `audit` option, or nowhere (the reset still counted) — and `describe` shows each.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { cdcTableDecoder } from '../../src/cdc/table-decoder.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import type { AuditEventValue } from '../../src/governance/audit.ts'
import { withTelemetry, type TelemetryEvent } from '../../src/observability/telemetry.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'

const NOTES = 'wiki.public.notes'

interface Note {
  readonly id: number
  readonly title: string
  readonly body: string
}

function envelope(op: 'c' | 't', lsn: number, row: Note | null) {
  return {
    before: null,
    after: row,
    source: { ts_ms: 2_000 + lsn, lsn, schema: 'public', table: 'notes', snapshot: 'false' },
    op,
    ts_ms: 2_000 + lsn,
  }
}

const decoder = () => cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }))
const note = (id: number): Note => ({ id, title: `Note ${id}`, body: `The body of note ${id}, long enough to chunk.` })

async function fill(driver: TopologyTestDriver, ids: readonly number[]): Promise<void> {
  for (const id of ids) await driver.pipe(NOTES, JSON.stringify({ id }), envelope('c', 100 + id, note(id)))
}

const policy = { name: 'wiki', version: '1', classify: () => 'internal' }

test('no govern: a truncate is audited on the chunk topic of toChunks, next to the chunk tombstones it caused', async () => {
  const b = new TopologyBuilder({ applicationId: 'wiki' })
  b.cdcTable<Note>(NOTES, { name: 'notes', ...decoder() })
    .chunk({ entityType: 'note', text: (n) => n.body, strategy: { kind: 'recursive', size: 200 } })
    .embed()
    .toChunks('rag.chunks.wiki')
  const topology = b.build()
  assert.match(topology.describe(), /--> notes-reset-sink, notes-audit-sink, /)
  assert.match(topology.describe(), /Sink: notes-audit-sink \(topic: rag\.chunks\.wiki\)/)
  const driver = new TopologyTestDriver(topology, { partitions: 2 })
  await fill(driver, [1, 2, 3, 4, 5])
  await driver.pipe(NOTES, null, envelope('t', 900, null))
  const records = driver.readOutput('rag.chunks.wiki')
  const audits = records.flatMap((r) =>
    r.value !== null && (r.value as AuditEventValue).kind !== undefined ? [r.value as AuditEventValue] : [],
  )
  assert.deepEqual(audits.map((a) => [a.kind, a.reason]).sort(), [
    ['TRUNCATED', 'notes (public.notes)'],
    ['TRUNCATED', 'notes (public.notes)'],
  ])
  assert.equal(
    audits.reduce((n, a) => n + a.counts.rows_removed, 0),
    5,
  )
  const tombstones = records.filter((r) => r.value === null).length
  assert.ok(tombstones >= 5, `every note's chunks tombstoned (${tombstones})`)
  assert.deepEqual(driver.readDeadLetters(), [])
})

test('with govern: the reset audit goes where govern writes its audit events, and only there', async () => {
  const b = new TopologyBuilder({ applicationId: 'wiki-gov' })
  b.cdcTable<Note>(NOTES, { name: 'notes', ...decoder() })
    .govern({ name: 'govern', policy, document: (n) => ({ text: n.body }), audit: { topic: 'wiki.audit' } })
    .chunk({ entityType: 'note', strategy: { kind: 'recursive', size: 200 } })
    .embed()
    .toChunks('rag.chunks.wiki')
  const topology = b.build()
  assert.match(topology.describe(), /Sink: notes-audit-sink \(topic: wiki\.audit\)/)
  const driver = new TopologyTestDriver(topology, { partitions: 1 })
  await fill(driver, [1, 2])
  driver.readOutput('wiki.audit')
  await driver.pipe(NOTES, null, envelope('t', 900, null))
  const truncated = driver.readOutput('wiki.audit').filter((r) => (r.value as AuditEventValue).kind === 'TRUNCATED')
  assert.deepEqual(
    truncated.map((r) => (r.value as AuditEventValue).counts),
    [{ rows_removed: 2, partition: 0, source_position: 900 }],
  )
  const onChunks = driver.readOutput('rag.chunks.wiki').filter((r) => (r.value as { kind?: string } | null)?.kind)
  assert.deepEqual(onChunks, [], 'no audit event on the chunk topic: govern sends its audit elsewhere')
})

test('no audit topic: nothing is written but the reset is still reported (the ragstream_table_resets_total telemetry)', async () => {
  const b = new TopologyBuilder({ applicationId: 'wiki-plain' })
  b.cdcTable<Note>(NOTES, { name: 'notes', ...decoder() }).to('wiki.out')
  const topology = b.build()
  assert.doesNotMatch(topology.describe(), /audit/)
  const processor = topology.compile({ partitions: 1 })
  assert.deepEqual(
    processor.topics.filter((x) => x.role === 'sink').map((x) => x.name),
    ['wiki.out'],
  )
  const driver = new TopologyTestDriver(topology, { partitions: 1 })
  await fill(driver, [1, 2, 3])
  const events: TelemetryEvent[] = []
  await withTelemetry(
    (e) => events.push(e),
    () => driver.pipe(NOTES, null, envelope('t', 900, null)),
  )
  assert.deepEqual(driver.readTable('wiki.out').size, 0)
  assert.deepEqual(
    events.filter((e) => e.kind === 'table-reset'),
    [{ kind: 'table-reset', table: 'notes', reset: 'truncate', partition: 0, rowsRemoved: 3 }],
  )
})

test('the audit option: validated, and only on a CDC table', () => {
  const b = new TopologyBuilder({ applicationId: 'wiki-bad' })
  b.table<Note>('wiki.compacted', { name: 'compacted', audit: { topic: 'wiki.audit' } }).to('a')
  b.cdcTable<Note>(NOTES, { name: 'notes', ...decoder(), audit: { topic: 'bad topic!' } }).to('b')
  assert.throws(
    () => b.build(),
    (e: Error) =>
      /compacted\/audit: only a CDC table/.test(e.message) &&
      /notes\/audit\/topic: 'bad topic!' is not a legal/.test(e.message),
  )
})
