import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import type { EncodedRecord, RowChange, RowDelete, RowUpsert } from '../../src/cdc/change-event.ts'
import { RagstreamError } from '../../src/errors.ts'
import { AvroWireDecoder } from '../../src/serde/wire.ts'
import { uniqueName } from '../support/stack.ts'
import { registerAvro, registry, registryUrl } from '../serde/registry-helpers.ts'

interface Expect {
  kind: 'upsert' | 'delete'
  op: string
  key: string
  snapshot?: boolean
  position?: string | null
  table?: string
  timestampMs?: number
  rowHas?: string
  rowLacks?: string
  beforeHas?: string
}
interface FixtureRecord {
  description: string
  key: unknown
  value: unknown
  headers: Record<string, string>
  expect: Expect
}
interface Fixture {
  topic: string
  records: FixtureRecord[]
}

/** The change as a row change (a truncate fails the test). */
function rowOf(change: RowChange): RowUpsert | RowDelete {
  assert.notEqual(change.kind, 'truncate')
  return change as RowUpsert | RowDelete
}

const fixture = (name: string): Fixture =>
  JSON.parse(readFileSync(new URL(`../fixtures/debezium/${name}`, import.meta.url), 'utf8')) as Fixture

function jsonRecord(topic: string, r: FixtureRecord, offset: number): EncodedRecord {
  return {
    topic,
    partition: 0,
    offset: BigInt(offset),
    timestamp: 1764150000999n,
    key: r.key === null ? null : Buffer.from(JSON.stringify(r.key)),
    value: r.value === null ? null : Buffer.from(JSON.stringify(r.value)),
    headers: new Map(Object.entries(r.headers).map(([k, v]) => [k, Buffer.from(v)])),
  }
}

function raw(value: string | Buffer | null, key: string | Buffer | null = '{"id":1}', offset = 7n): EncodedRecord {
  const buf = (v: string | Buffer | null) => (v === null ? null : Buffer.isBuffer(v) ? v : Buffer.from(v))
  return {
    topic: 'dbserver1.inventory.customers',
    partition: 3,
    offset,
    timestamp: 0n,
    key: buf(key),
    value: buf(value),
  }
}

/** avsc decodes records as instances of generated classes; compare their fields only. */
function plain(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value
  if (Array.isArray(value)) return value.map(plain)
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]))
}

function check(change: RowChange, expect: Expect, description: string): void {
  assert.equal(change.kind, expect.kind, description)
  assert.equal(change.op, expect.op, description)
  assert.equal(change.key, expect.key, description)
  if (expect.snapshot !== undefined) assert.equal(change.source.snapshot, expect.snapshot, description)
  if (expect.position !== undefined) assert.equal(change.source.position, expect.position, description)
  if (expect.table !== undefined) assert.equal(change.source.table, expect.table, description)
  if (expect.timestampMs !== undefined) assert.equal(change.source.timestampMs, expect.timestampMs, description)
  if (expect.rowHas !== undefined) assert.ok(change.kind === 'upsert' && expect.rowHas in change.row, description)
  if (expect.rowLacks !== undefined)
    assert.ok(change.kind === 'upsert' && !(expect.rowLacks in change.row), description)
  if (expect.beforeHas !== undefined)
    assert.ok(change.before !== null && expect.beforeHas in change.before, description)
}

for (const name of ['customers.json', 'customers.schemaless.json', 'order-lines.json']) {
  test(`Debezium JSON fixture ${name}: every op, tombstones, PK change and schema change decode as specified`, () => {
    const { topic, records } = fixture(name)
    const decoder = new DebeziumDecoder({ valueFormat: 'json' })
    records.forEach((r, i) => {
      const change = decoder.decode(jsonRecord(topic, r, 100 + i))
      check(change, r.expect, r.description)
      assert.equal(change.source.topic, topic)
      assert.equal(change.source.offset, BigInt(100 + i))
    })
  })
}

test('wrapped and schemaless JSON decode to identical row changes', () => {
  const wrapped = fixture('customers.json')
  const plain = fixture('customers.schemaless.json')
  const decoder = new DebeziumDecoder({ valueFormat: 'json' })
  wrapped.records.forEach((r, i) => {
    assert.deepEqual(
      decoder.decode(jsonRecord(wrapped.topic, r, i)),
      decoder.decode(jsonRecord(plain.topic, plain.records[i], i)),
    )
  })
})

test('row changes keep the row, the source position and the envelope time for lineage', () => {
  const { topic, records } = fixture('customers.json')
  const change = new DebeziumDecoder({ valueFormat: 'json' }).decode(jsonRecord(topic, records[1], 5))
  assert.equal(change.kind, 'upsert')
  assert.equal(change.row.email, 'jonas@berg.example')
  assert.deepEqual(change.keyFields, { id: 1005 })
  assert.deepEqual(change.source, {
    topic,
    partition: 0,
    offset: 5n,
    timestampMs: 1764150060000,
    position: '33822120',
    table: 'inventory.customers',
    snapshot: false,
  })
})

test('a tombstone is a delete of its key (a no-op after the delete), never an error', () => {
  const change = rowOf(
    new DebeziumDecoder({ valueFormat: 'json' }).decode(
      raw(null, '{"schema":{"type":"struct"},"payload":{"id":1005}}'),
    ),
  )
  assert.deepEqual(
    { kind: change.kind, op: change.op, key: change.key, before: change.before },
    { kind: 'delete', op: 'tombstone', key: '1005', before: null },
  )
})

test('composite keys have one stable string form whatever the field order', () => {
  const decoder = new DebeziumDecoder({ valueFormat: 'json' })
  const a = rowOf(decoder.decode(raw(null, '{"order_id":7,"line_no":2}')))
  const b = rowOf(decoder.decode(raw(null, '{"line_no":2,"order_id":7}')))
  assert.equal(a.key, 'line_no=2,order_id=7')
  assert.equal(b.key, a.key)
  const c = rowOf(decoder.decode(raw(null, '{"a":"x,y=z%","b":1}')))
  assert.equal(c.key, 'a=x%2Cy%3Dz%25,b=1')
})

test('keyColumns builds the key from the row (tables without a primary key)', () => {
  const { topic, records } = fixture('customers.schemaless.json')
  const decoder = new DebeziumDecoder({ valueFormat: 'json', keyColumns: ['email'] })
  const r = { ...records[1], key: null }
  assert.equal(rowOf(decoder.decode(jsonRecord(topic, r, 1))).key, 'jonas@berg.example')
})

test('a truncate (op=t, no key) decodes to a truncate of the table at its source position', () => {
  const decoder = new DebeziumDecoder({ valueFormat: 'json' })
  const change = decoder.decode(
    raw(
      '{"op":"t","before":null,"after":null,"source":{"ts_ms":1796644393475,"lsn":26677912,"schema":"public","table":"tickets","snapshot":"false"}}',
      null,
    ),
  )
  assert.equal(change.kind, 'truncate')
  assert.deepEqual(
    { position: change.source.position, table: change.source.table, ts: change.source.timestampMs },
    { position: '26677912', table: 'public.tickets', ts: 1796644393475 },
  )
})

test("snapshot reads say where they sit in their table's snapshot (source.snapshot), changes do not", () => {
  const decoder = new DebeziumDecoder({ valueFormat: 'json' })
  const mark = (op: string, flag: string) =>
    rowOf(decoder.decode(raw(`{"op":"${op}","after":{"id":1},"source":{"snapshot":"${flag}","lsn":5}}`))).source
      .snapshotMark
  assert.equal(mark('r', 'first'), 'first')
  assert.equal(mark('r', 'first_in_data_collection'), 'first')
  assert.equal(mark('r', 'true'), 'read')
  assert.equal(mark('r', 'last_in_data_collection'), 'last')
  assert.equal(mark('r', 'last'), 'last')
  assert.equal(mark('r', 'incremental'), 'incremental')
  assert.equal(mark('c', 'false'), undefined)
  assert.equal(mark('u', 'false'), undefined)
})

const malformed: [string, EncodedRecord, RegExp][] = [
  ['invalid JSON', raw('{"op":"c",'), /value is not valid JSON/],
  ['an array value', raw('[1,2]'), /not a Debezium envelope \(got an array\)/],
  ['no op field', raw('{"before":null,"after":{"id":1}}'), /field "op" is missing/],
  ['unknown op', raw('{"op":"x","after":{"id":1},"source":{}}'), /unknown Debezium op "x"/],
  ['create without after', raw('{"op":"c","before":null,"after":null,"source":{}}'), /op=c without an "after" row/],
  ['after that is not a row', raw('{"op":"u","after":"oops","source":{}}'), /"after" is not a row \(got string\)/],
  ['null key and null value', raw(null, null), /tombstone with a null or empty key/],
  ['no key on a create', raw('{"op":"c","after":{"id":1},"source":{}}', null), /record has no key/],
  ['a key that is not JSON', raw('{"op":"c","after":{"id":1},"source":{}}', 'id=1'), /key is not valid JSON/],
]

for (const [what, record, reason] of malformed) {
  test(`malformed input (${what}) throws RS_DECODE_FAILED naming topic, partition, offset and the problem`, () => {
    const decoder = new DebeziumDecoder({ valueFormat: 'json' })
    assert.throws(
      () => decoder.decode(record),
      (error: unknown) => {
        assert.ok(error instanceof RagstreamError)
        assert.equal(error.code, 'RS_DECODE_FAILED')
        assert.equal(error.retriable, false)
        assert.match(error.message, reason)
        assert.match(error.message, /dbserver1\.inventory\.customers\[3\]@7/)
        assert.deepEqual(
          [error.context.topic, error.context.partition, error.context.offset],
          ['dbserver1.inventory.customers', 3, 7n],
        )
        assert.equal(typeof error.context.reason, 'string')
        return true
      },
    )
  })
}

test('a good record after a malformed one still decodes (the decoder keeps no state)', () => {
  const decoder = new DebeziumDecoder({ valueFormat: 'json' })
  assert.throws(() => decoder.decode(raw('not json')))
  assert.equal(rowOf(decoder.decode(raw('{"op":"c","after":{"id":1,"name":"a"},"source":{"ts_ms":5}}'))).key, '1')
})

test('Debezium Avro through the real schema registry: every op, tombstone, PK change and schema change', async (t) => {
  const schemas = JSON.parse(
    readFileSync(new URL('../fixtures/debezium/customers.avro-schemas.json', import.meta.url), 'utf8'),
  ) as {
    keySchema: object
    valueSchema: object
    valueSchemaV2: object
  }
  const topic = uniqueName('dbserver1.inventory.customers')
  const keyId = await registerAvro(t, `${topic}-key`, schemas.keySchema)
  const valueId = await registerAvro(t, `${topic}-value`, schemas.valueSchema)
  // Registering V2 under the same subject is what the AvroConverter does after ALTER TABLE.
  const valueIdV2 = await registerAvro(t, `${topic}-value`, schemas.valueSchemaV2)
  assert.notEqual(valueIdV2, valueId)

  const encoder = registry()
  const { records } = fixture('customers.schemaless.json')
  const encoded: EncodedRecord[] = []
  for (const [i, r] of records.entries()) {
    const v2 = r.expect.rowHas === 'tier'
    encoded.push({
      topic,
      partition: 0,
      offset: BigInt(i),
      timestamp: 0n,
      key: r.key === null ? null : await encoder.encode(keyId, r.key),
      value: r.value === null ? null : await encoder.encode(v2 ? valueIdV2 : valueId, r.value),
    })
  }

  const decoder = new DebeziumDecoder({ valueFormat: 'avro', avro: new AvroWireDecoder(registry(), registryUrl) })
  await decoder.prepare(encoded)
  const jsonDecoder = new DebeziumDecoder({ valueFormat: 'json' })
  records.forEach((r, i) => {
    const change = decoder.decode(encoded[i])
    check(change, r.expect, `avro: ${r.description}`)
    // Avro and JSON agree on everything but the topic.
    const fromJson = jsonDecoder.decode({ ...jsonRecord(topic, r, i), timestamp: 0n })
    assert.deepEqual(plain(change), fromJson, r.description)
  })

  // Malformed Avro: not in the wire format, an unknown schema id, a truncated body.
  const body = encoded[1].value as Buffer
  const bad: [Buffer, RegExp][] = [
    [Buffer.from('{"op":"c"}'), /not in the Confluent wire format/],
    [Buffer.concat([Buffer.from([0, 0x7f, 0xff, 0xff, 0xf0]), body.subarray(5)]), /schema id 2147483632 is unknown/],
    [body.subarray(0, body.length - 9), /value is not valid Avro/],
  ]
  const badRecords = bad.map(([value], i) => ({ ...encoded[1], offset: BigInt(900 + i), value }))
  await decoder.prepare(badRecords)
  bad.forEach(([, reason], i) => {
    assert.throws(
      () => decoder.decode(badRecords[i]),
      (e: unknown) =>
        e instanceof RagstreamError &&
        e.code === 'RS_DECODE_FAILED' &&
        reason.test(e.message) &&
        e.context.offset === BigInt(900 + i),
    )
  })
})

test('invalid UTF-8 in a JSON value or a string key is a decode failure naming it, never replaced silently', () => {
  const decoder = new DebeziumDecoder({ valueFormat: 'json' })
  // A valid envelope whose name field carries a lone continuation byte and a truncated sequence.
  const envelope = Buffer.concat([
    Buffer.from('{"op":"c","after":{"id":1,"name":"caf'),
    Buffer.from([0xc3, 0x28, 0x80, 0xe2, 0x82]),
    Buffer.from('"},"source":{"ts_ms":1}}'),
  ])
  assert.throws(
    () => decoder.decode(raw(envelope)),
    (error: unknown) =>
      error instanceof RagstreamError &&
      error.code === 'RS_DECODE_FAILED' &&
      /value is not valid UTF-8/.test(error.message) &&
      error.context.offset === 7n,
  )
  const stringKeys = new DebeziumDecoder({ valueFormat: 'json', keyFormat: 'string' })
  assert.throws(
    () => stringKeys.decode(raw('{"op":"c","after":{"id":1},"source":{"ts_ms":1}}', Buffer.from([0xff, 0xfe]))),
    /key is not valid UTF-8/,
  )
})
