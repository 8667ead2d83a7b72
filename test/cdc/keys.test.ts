import { test } from 'node:test'
import assert from 'node:assert/strict'
import { canonicalJson, keyFromColumns, stableKey } from '../../src/cdc/keys.ts'

test('stableKey: scalars and one-column structs are the value itself', () => {
  assert.equal(stableKey(42), '42')
  assert.equal(stableKey({ id: 42 }), '42')
  assert.equal(stableKey({ email: 'a@b.c' }), 'a@b.c')
  assert.equal(stableKey(Buffer.from([1, 2])), 'AQI=')
  assert.equal(stableKey(null), undefined)
  assert.equal(stableKey({}), undefined)
})

test('stableKey: composite keys are sorted by column and escaped', () => {
  assert.equal(stableKey({ b: 2, a: 1 }), 'a=1,b=2')
  assert.equal(stableKey({ a: 'x=y', b: '1,2' }), 'a=x%3Dy,b=1%2C2')
})

test('keyFromColumns and canonicalJson', () => {
  assert.deepEqual(keyFromColumns({ a: 1, b: 2, c: 3 }, ['c', 'a']), { c: 3, a: 1 })
  assert.equal(keyFromColumns({ a: 1 }, ['a', 'b']), undefined)
  assert.equal(canonicalJson({ b: [2, { d: 1, c: 2n }], a: undefined, z: null }), '{"b":[2,{"c":"2","d":1}],"z":null}')
})

test('64-bit JSON keys and values stay exact: two ids that differ beyond 2^53 never collapse into one key', async () => {
  const { DebeziumDecoder } = await import('../../src/cdc/debezium.ts')
  const { cdcTableDecoder } = await import('../../src/cdc/table-decoder.ts')
  const decoder = new DebeziumDecoder({ valueFormat: 'json' })
  const record = (id: string) => ({
    topic: 't',
    partition: 0,
    offset: 1n,
    timestamp: 0n,
    key: Buffer.from(`{"id":${id}}`),
    value: Buffer.from(`{"op":"c","after":{"id":${id},"n":1.5},"source":{"ts_ms":1,"ts_ns":1764150000000000001}}`),
  })
  const a = decoder.decode(record('1234567890123456789'))
  const b = decoder.decode(record('1234567890123456790'))
  assert.ok(a.kind !== 'truncate' && b.kind !== 'truncate')
  assert.equal(a.key, '1234567890123456789')
  assert.equal(b.key, '1234567890123456790')
  assert.ok(a.kind === 'upsert' && a.row.id === 1234567890123456789n && a.row.n === 1.5)
  const r = record('1234567890123456789')
  assert.deepEqual(cdcTableDecoder(decoder, { lineageField: false }).decode(r.key, r.value, r).value, {
    id: '1234567890123456789',
    n: 1.5,
  })
})
