import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { UpsertDecoder } from '../../src/cdc/upsert.ts'
import { cdcTableDecoder } from '../../src/cdc/table-decoder.ts'
import type { EncodedRecord } from '../../src/cdc/change-event.ts'

const rec = (key: string | null, value: string | null): EncodedRecord => ({
  topic: 'dbserver1.inventory.customers',
  partition: 1,
  offset: 42n,
  timestamp: 5n,
  key: key === null ? null : Buffer.from(key),
  value: value === null ? null : Buffer.from(value),
})

test('table decoder: upserts carry the row plus _source lineage; deletes and tombstones are null values', async () => {
  const table = cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }))
  await table.prepare([])
  const r = rec(
    '{"id":7}',
    '{"op":"u","after":{"id":7,"name":"x"},"source":{"ts_ms":99,"lsn":123,"schema":"inventory","table":"customers"}}',
  )
  assert.deepEqual(table.decode(r.key, r.value, r), {
    key: '7',
    timestamp: 99,
    value: {
      id: 7,
      name: 'x',
      _source: {
        topic: 'dbserver1.inventory.customers',
        partition: 1,
        offset: '42',
        timestampMs: 99,
        appendedAtMs: 5,
        position: '123',
        table: 'inventory.customers',
        op: 'u',
      },
    },
    cdc: { snapshot: 'streamed' },
  })
  // A delete's event time is its change time too: Debezium's ts_ms, else the record timestamp.
  const streamed = { snapshot: 'streamed' }
  const d = rec('{"id":7}', '{"op":"d","before":{"id":7},"source":{"ts_ms":120}}')
  assert.deepEqual(table.decode(d.key, d.value, d), { key: '7', value: null, timestamp: 120, cdc: streamed })
  const t = rec('{"id":7}', null)
  assert.deepEqual(table.decode(t.key, t.value, t), { key: '7', value: null, timestamp: 5, cdc: streamed })
  const read = rec('{"id":7}', '{"op":"r","after":{"id":7},"source":{"snapshot":"last_in_data_collection","lsn":5}}')
  assert.deepEqual(table.decode(read.key, read.value, read).cdc, { snapshot: 'last' })
  const truncate = rec(null, '{"op":"t","source":{"ts_ms":99,"lsn":130,"schema":"inventory","table":"customers"}}')
  assert.deepEqual(table.decode(truncate.key, truncate.value, truncate), {
    key: '',
    value: null,
    timestamp: 99,
    cdc: { truncate: { position: '130', timestampMs: 99, table: 'inventory.customers' } },
  })
})

test('table decoder: lineage can be turned off or renamed; works for plain upsert topics', () => {
  const plain = cdcTableDecoder(new UpsertDecoder({ valueFormat: 'json' }), { lineageField: false })
  const r = rec('kb-1', '{"title":"t"}')
  assert.deepEqual(plain.decode(r.key, r.value, r), {
    key: 'kb-1',
    value: { title: 't' },
    timestamp: 5,
    cdc: { snapshot: 'streamed' },
  })
  const renamed = cdcTableDecoder(new UpsertDecoder({ valueFormat: 'json' }), { lineageField: 'lineage' })
  assert.equal((renamed.decode(r.key, r.value, r).value as { lineage: { op: string } }).lineage.op, 'upsert')
})
