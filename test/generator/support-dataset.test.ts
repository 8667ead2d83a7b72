// The generator's records are what a real Debezium connector writes: every one decodes with the
// independent CDC decoder, deletes carry tombstones, and the same seed gives the same bytes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SupportDataset, type GeneratedRecord } from '../../src/generator/support-dataset.ts'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { RagstreamError } from '../../src/errors.ts'

function run(seed: number, withSchema: boolean, steps: number, malformedRate = 0.02): GeneratedRecord[] {
  let clock = 1_790_000_000_000
  const dataset = new SupportDataset({ seed, server: 'support', withSchema, malformedRate, now: () => (clock += 7) })
  const records = [...dataset.backfill(40)]
  for (let i = 0; i < steps; i++) records.push(...dataset.step())
  return records
}

const asBytes = (records: GeneratedRecord[]) =>
  records.map((r) => [r.topic, r.key?.toString('hex'), r.value?.toString('hex')])

test('the same seed gives the same records; another seed does not', () => {
  assert.deepEqual(asBytes(run(7, false, 300)), asBytes(run(7, false, 300)))
  assert.notDeepEqual(asBytes(run(7, false, 300)), asBytes(run(8, false, 300)))
})

for (const withSchema of [false, true]) {
  test(`every CDC record decodes as Debezium (schema wrapper ${withSchema ? 'on' : 'off'}); malformed ones fail with RS_DECODE_FAILED`, () => {
    const decoder = new DebeziumDecoder({ valueFormat: 'json' })
    const records = run(11, withSchema, 1500)
    const ops: Record<string, number> = {}
    let malformed = 0
    let offset = 0n
    let previous: GeneratedRecord | undefined
    for (const record of records) {
      if (record.topic === 'support.products') continue
      const encoded = {
        topic: record.topic,
        partition: 0,
        offset: offset++,
        timestamp: 0n,
        key: record.key,
        value: record.value,
      }
      if (record.malformed) {
        malformed++
        assert.throws(
          () => decoder.decode(encoded),
          (e: unknown) => e instanceof RagstreamError && e.code === 'RS_DECODE_FAILED',
          record.malformed,
        )
        continue
      }
      const change = decoder.decode(encoded)
      ops[change.op] = (ops[change.op] ?? 0) + 1
      if (change.op === 'tombstone') {
        // A tombstone always follows the delete envelope of the same key.
        assert.ok(
          previous && previous.value !== null && previous.key?.equals(record.key as Buffer),
          'tombstone follows its delete',
        )
      }
      if (change.kind === 'upsert')
        assert.equal(change.source.table, record.topic.endsWith('tickets') ? 'public.tickets' : 'public.customers')
      previous = record
    }
    assert.ok(ops.r >= 40 && ops.c > 0 && ops.u > 0 && ops.d > 0, JSON.stringify(ops))
    assert.equal(ops.d, ops.tombstone, 'one tombstone per delete')
    assert.ok(malformed > 0, 'some malformed records are generated')
  })
}

test('the trickle includes key changes, reclassifications, region moves and PII in texts', () => {
  const records = run(3, false, 3000, 0)
  const kinds = new Set(records.map((r) => r.kind))
  for (const kind of ['ticket:c', 'ticket:u', 'ticket:d', 'tombstone', 'customerUpdate', 'product'])
    assert.ok(kinds.has(kind), kind)
  const customerUpdates = records.filter((r) => r.kind === 'customerUpdate').map((r) => JSON.parse(String(r.value)))
  const changed = (field: string) => customerUpdates.some((e) => e.before[field] !== e.after[field])
  assert.ok(changed('classification') && changed('region') && changed('tier'))
  const bodies = records
    .filter((r) => r.kind.startsWith('ticket:') && r.value)
    .map((r) => JSON.parse(String(r.value)).after?.body ?? '')
    .join('\n')
  assert.match(bodies, /[a-z.]+\d+@[a-z.]+\.(com|org|net)/)
  assert.match(bodies, /card (\d{4} ){3}\d{4}/)
  assert.match(bodies, /IBAN DE\d\d/)
  const longest = Math.max(...bodies.split('\nHello support').map((b) => b.length))
  assert.ok(longest > 2000, `some tickets are long (${longest} chars)`)
})
