import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { decimalString } from '../../src/cdc/semantic-types.ts'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import type { EncodedRecord } from '../../src/cdc/change-event.ts'
import { AvroWireDecoder } from '../../src/serde/wire.ts'
import { uniqueName } from '../support/stack.ts'
import { registerAvro, registry, registryUrl } from '../serde/registry-helpers.ts'

const load = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/debezium/${name}`, import.meta.url), 'utf8'))
const asRecord = (topic: string, r: { key: unknown; value: unknown }): EncodedRecord => ({
  topic,
  partition: 0,
  offset: 0n,
  timestamp: 0n,
  key: Buffer.from(JSON.stringify(r.key)),
  value: Buffer.from(JSON.stringify(r.value)),
})
const micros = 1764150060000000 // updated_at of the fixture's insert, µs since epoch
const expectedTimestamp = `${new Date(micros / 1000).toISOString().slice(0, 19)}.000000`

test("decimals: unscaled big-endian two's complement with a scale", () => {
  assert.equal(decimalString(Buffer.from([0x02, 0x37]), 2), '5.67')
  assert.equal(decimalString(Buffer.from([0xff, 0x38]), 2), '-2.00')
  assert.equal(decimalString(Buffer.from([0x05]), 3), '0.005')
  assert.equal(decimalString(Buffer.from([0x00]), 0), '0')
  assert.equal(decimalString(Buffer.from([0x0c]), -2), '1200')
})

test('JSON with the schema wrapper: Decimal and MicroTimestamp columns become readable with semanticTypes: convert', () => {
  const lines = load('order-lines.json')
  const change = new DebeziumDecoder({ valueFormat: 'json', semanticTypes: 'convert' }).decode(
    asRecord(lines.topic, lines.records[0]),
  )
  assert.ok(change.kind === 'upsert')
  assert.equal(change.row.price, '5.67')
  const customers = load('customers.json')
  const c = new DebeziumDecoder({ valueFormat: 'json', semanticTypes: 'convert' }).decode(
    asRecord(customers.topic, customers.records[1]),
  )
  assert.ok(c.kind === 'upsert')
  assert.equal(c.row.updated_at, expectedTimestamp)
  // Default: raw values, exactly as sent; schemaless JSON has nothing to convert with.
  const raw = new DebeziumDecoder({ valueFormat: 'json' }).decode(asRecord(customers.topic, customers.records[1]))
  assert.ok(raw.kind === 'upsert' && raw.row.updated_at === micros)
  const plain = load('customers.schemaless.json')
  const p = new DebeziumDecoder({ valueFormat: 'json', semanticTypes: 'convert' }).decode(
    asRecord(plain.topic, plain.records[1]),
  )
  assert.ok(p.kind === 'upsert' && p.row.updated_at === micros)
})

test("Avro: semantic types are read from the writer schema's connect.name attributes", async (t) => {
  const schemas = load('customers.avro-schemas.json')
  const plain = load('customers.schemaless.json')
  const topic = uniqueName('dbserver1.inventory.customers')
  const valueId = await registerAvro(t, `${topic}-value`, schemas.valueSchema)
  const record: EncodedRecord = {
    topic,
    partition: 0,
    offset: 0n,
    timestamp: 0n,
    key: Buffer.from('{"id":1005}'),
    value: await registry().encode(valueId, plain.records[1].value),
  }
  const decoder = new DebeziumDecoder({
    valueFormat: 'avro',
    keyFormat: 'json',
    semanticTypes: 'convert',
    avro: new AvroWireDecoder(registry(), registryUrl, { rawSchemas: true }),
  })
  await decoder.prepare([record])
  const change = decoder.decode(record)
  assert.ok(change.kind === 'upsert')
  assert.equal(change.row.updated_at, expectedTimestamp)
  assert.equal(change.row.email, 'jonas@berg.example')
})
