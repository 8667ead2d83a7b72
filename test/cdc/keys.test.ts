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
