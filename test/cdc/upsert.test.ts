import { test } from 'node:test'
import assert from 'node:assert/strict'
import { UpsertDecoder } from '../../src/cdc/upsert.ts'
import type { EncodedRecord } from '../../src/cdc/change-event.ts'
import { RagstreamError } from '../../src/errors.ts'
import { AvroWireDecoder } from '../../src/serde/wire.ts'
import { uniqueName } from '../support/stack.ts'
import { registerAvro, registry, registryUrl } from '../serde/registry-helpers.ts'

const rec = (key: string | Buffer | null, value: string | Buffer | null, offset = 1n): EncodedRecord => ({
  topic: 'kb.articles',
  partition: 1,
  offset,
  timestamp: 1764150000123n,
  key: typeof key === 'string' ? Buffer.from(key) : key,
  value: typeof value === 'string' ? Buffer.from(value) : value,
})

test('plain upsert topic: a JSON value upserts, a null value deletes, the record timestamp is the source time', () => {
  const decoder = new UpsertDecoder({ valueFormat: 'json' })
  const up = decoder.decode(rec('kb-17', '{"title":"Reset a password","body":"..."}'))
  assert.equal(up.kind, 'upsert')
  assert.equal(up.key, 'kb-17')
  assert.equal(up.kind === 'upsert' && up.row.title, 'Reset a password')
  assert.deepEqual(up.source, {
    topic: 'kb.articles',
    partition: 1,
    offset: 1n,
    timestampMs: 1764150000123,
    position: null,
    table: null,
    snapshot: false,
  })
  const del = decoder.decode(rec('kb-17', null))
  assert.deepEqual([del.kind, del.op, del.key], ['delete', 'tombstone', 'kb-17'])
})

test('JSON keys (scalar or struct) and keyColumns', () => {
  assert.equal(
    new UpsertDecoder({ valueFormat: 'json', keyFormat: 'json' }).decode(rec('{"tenant":"t1","id":9}', '{}')).key,
    'id=9,tenant=t1',
  )
  assert.equal(new UpsertDecoder({ valueFormat: 'json', keyFormat: 'json' }).decode(rec('42', '{}')).key, '42')
  assert.equal(
    new UpsertDecoder({ valueFormat: 'json', keyColumns: ['slug'] }).decode(rec(null, '{"slug":"reset"}')).key,
    'reset',
  )
})

test('malformed upsert records throw RS_DECODE_FAILED with the record position', () => {
  const decoder = new UpsertDecoder({ valueFormat: 'json' })
  for (const [r, reason] of [
    [rec('k', '"just a string"'), /value is not a row/],
    [rec('k', '{broken'), /value is not valid JSON/],
    [rec(null, '{}'), /record has no key/],
    [rec(null, null), /null value with a null or empty key/],
  ] as const) {
    assert.throws(
      () => decoder.decode(r),
      (e: unknown) =>
        e instanceof RagstreamError &&
        e.code === 'RS_DECODE_FAILED' &&
        reason.test(e.message) &&
        /kb\.articles\[1\]@1/.test(e.message),
    )
  }
})

test('Avro upsert topic through the real registry: added and removed fields are tolerated', async (t) => {
  const topic = uniqueName('kb.articles')
  const v1 = {
    type: 'record',
    name: 'Article',
    namespace: 'kb',
    fields: [
      { name: 'title', type: 'string' },
      { name: 'views', type: 'long' },
    ],
  }
  const v2 = {
    type: 'record',
    name: 'Article',
    namespace: 'kb',
    fields: [
      { name: 'title', type: 'string' },
      { name: 'lang', type: 'string', default: 'en' },
    ],
  }
  const id1 = await registerAvro(t, `${topic}-value`, v1)
  const id2 = await registerAvro(t, `${topic}-value`, v2)
  const enc = registry()
  const records = [
    rec('a', await enc.encode(id1, { title: 'One', views: 2 ** 60 }), 1n),
    rec('a', await enc.encode(id2, { title: 'Two', lang: 'de' }), 2n),
  ]
  const decoder = new UpsertDecoder({ valueFormat: 'avro', avro: new AvroWireDecoder(registry(), registryUrl) })
  await decoder.prepare(records)
  const [a, b] = records.map((r) => decoder.decode(r))
  assert.ok(a.kind === 'upsert' && b.kind === 'upsert')
  assert.deepEqual({ ...a.row }, { title: 'One', views: 2n ** 60n })
  assert.deepEqual({ ...b.row }, { title: 'Two', lang: 'de' })
})
