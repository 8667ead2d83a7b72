// The demo's SQL source: the seeded dataset applied as statements to a real PostgreSQL (the stack's
// CDC source cluster), and, through the stack's Kafka Connect with Debezium, back out as change
// topics whose final state equals the tables.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import pg from 'pg'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { generatorTopics } from '../../src/generator/generator.ts'
import {
  dropSqlSource,
  generateSql,
  prepareSqlSource,
  slotName,
  sqlSourceEndpoints,
  statementsFor,
} from '../../src/generator/sql-source.ts'
import { SupportDataset, type GeneratedRecord } from '../../src/generator/support-dataset.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd } from '../support/topic-offsets.ts'

const json = (r: GeneratedRecord) =>
  r.value === null ? null : (JSON.parse(r.value.toString()) as Record<string, unknown>)

test('statementsFor: a key change is one UPDATE of the id, tombstones are dropped, products and malformed records go to Kafka', () => {
  const dataset = new SupportDataset({ seed: 3, server: 's', withSchema: false, malformedRate: 0.05, now: () => 1 })
  assert.ok([...dataset.backfill(20)].length > 20)
  const seen = new Set<string>()
  for (let i = 0; i < 2000 && seen.size < 6; i++) {
    const step = [...dataset.step()]
    const { sql, kafka } = statementsFor(step)
    const kinds = step.map((r) => r.kind)
    if (kinds.includes('ticket:d') && kinds.includes('ticket:c')) {
      seen.add('key change')
      assert.equal(sql.length, 1)
      assert.match(sql[0].text, /^UPDATE tickets SET id = \$2, .* WHERE id = \$1$/)
      assert.equal(sql[0].values[0], (json(step[0])!.before as { id: number }).id)
      assert.equal(sql[0].values[1], (json(step[2])!.after as { id: number }).id)
    } else if (kinds[0] === 'ticket:d') {
      seen.add('delete')
      assert.deepEqual(
        sql.map((s) => s.text),
        ['DELETE FROM tickets WHERE id = $1'],
      )
    } else if (kinds[0] === 'product') {
      seen.add('product')
      assert.deepEqual([sql.length, kafka.length], [0, 1])
    } else if (kinds[0] === 'malformed') {
      seen.add('malformed')
      assert.deepEqual([sql.length, kafka.length, kafka[0].topic], [0, 1, 's.public.tickets'])
    } else if (kinds[0] === 'ticket:c') {
      seen.add('insert')
      assert.match(sql[0].text, /^INSERT INTO tickets \(id, customer_id, /)
    } else if (kinds[0] === 'customerUpdate') {
      seen.add('update')
      assert.match(sql[0].text, /^UPDATE customers SET id = \$2, name = \$3, /)
    }
  }
  assert.equal(seen.size, 6, [...seen].join(', '))
})

test(
  'generateSql through Debezium: the captured topics end equal to the tables after backfill and live changes',
  { timeout: 180_000 },
  async (t) => {
    const base = uniqueName('cdc-sql-test')
    const server = `${base}.r1`
    const { sourceUrl, connectUrl } = sqlSourceEndpoints(process.env, base)
    const admin = new Admin({ clientId: uniqueName('sql-source-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    const topics = generatorTopics(server)
    const db = new pg.Client({ connectionString: sourceUrl })
    let connected = false
    t.after(async () => {
      if (connected) await db.end().catch(() => {})
      await dropSqlSource({ sourceUrl, connectUrl, server }).catch(() => {})
      const url = new URL(sourceUrl)
      const database = url.pathname.slice(1)
      url.pathname = '/postgres'
      const postgres = new pg.Client({ connectionString: url.toString() })
      await postgres.connect()
      await postgres.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`).catch(() => {})
      await postgres.end()
      await admin.deleteTopics({ topics: [`__debezium-heartbeat.${server}`] }).catch(() => {})
      await admin.close()
    })
    await createTopics(t, topics, 2, [{ name: 'cleanup.policy', value: 'compact' }])
    await prepareSqlSource({ sourceUrl, connectUrl, base, server })
    let live = 0
    const done = await generateSql({
      sourceUrl,
      connectUrl,
      brokers: endpoints.kafkaBrokers,
      server,
      base,
      seed: 11,
      backfill: 40,
      rate: 100,
      changes: 150,
      malformedRate: 0,
      partitions: 2,
      onConnectorRunning: () => live++,
    })
    assert.equal(live, 1)
    assert.equal(done.changes, 150)
    assert.ok((done.byKind['ticket:d'] ?? 0) > 0 && (done.byKind.customerUpdate ?? 0) > 0, JSON.stringify(done.byKind))

    await db.connect()
    connected = true
    assert.equal(
      (await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slotName(server)])).rowCount,
      1,
    )
    const decoder = new DebeziumDecoder({ valueFormat: 'json' })
    const deadline = Date.now() + 90_000
    for (;;) {
      const problems: string[] = []
      const records = await readToEnd(admin, 2, topics.slice(0, 2))
      for (const table of ['customers', 'tickets'] as const) {
        const captured = new Map<string, Record<string, unknown>>()
        for (const r of records.filter((x) => x.topic === `${server}.public.${table}`)) {
          const change = decoder.decode(r)
          assert.notEqual(change.kind, 'truncate', 'the demo never truncates')
          if (change.kind === 'truncate') continue
          if (change.kind === 'delete') captured.delete(change.key)
          else captured.set(change.key, { ...change.row })
        }
        const rows = (await db.query<Record<string, unknown>>(`SELECT * FROM ${table} ORDER BY id`)).rows
        const expected = new Map(rows.map((row) => [String(row.id), row]))
        const same =
          captured.size === expected.size &&
          [...expected].every(([k, row]) => {
            const got = captured.get(k)
            return got !== undefined && Object.keys(row).every((c) => String(got[c]) === String(row[c]))
          })
        if (!same) problems.push(`${table}: ${captured.size} captured vs ${expected.size} rows`)
      }
      if (problems.length === 0) break
      assert.ok(Date.now() < deadline, problems.join('; '))
      await new Promise((resolve) => setTimeout(resolve, 500))
    }

    await dropSqlSource({ sourceUrl, connectUrl, server })
    assert.equal(
      (await db.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slotName(server)])).rowCount,
      0,
      'the run left no replication slot',
    )
  },
)
