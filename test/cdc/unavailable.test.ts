import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { EncodedRecord, RowChange } from '../../src/cdc/change-event.ts'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { cdcTableDecoder } from '../../src/cdc/table-decoder.ts'
import { DEFAULT_UNAVAILABLE_PLACEHOLDER, UnavailableValueMatcher } from '../../src/cdc/unavailable.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { AvroWireDecoder } from '../../src/serde/wire.ts'
import { redactAtSource } from '../../src/operators/govern/index.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'
import { uniqueName } from '../support/stack.ts'
import { registerAvro, registry, registryUrl } from '../serde/registry-helpers.ts'

const P = DEFAULT_UNAVAILABLE_PLACEHOLDER
const P_BASE64 = Buffer.from(P).toString('base64')

function record(value: unknown, key: unknown = { id: 1 }, offset = 0n): EncodedRecord {
  return {
    topic: 'pg.public.tickets',
    partition: 0,
    offset,
    timestamp: 0n,
    key: Buffer.from(JSON.stringify(key)),
    value: value === null ? null : Buffer.from(JSON.stringify(value)),
  }
}

const upsert = (change: RowChange) => {
  assert.equal(change.kind, 'upsert')
  return change as Extract<RowChange, { kind: 'upsert' }>
}

test('the placeholder is recognised as text, bytes, base64 bytes and a one-element array; real values are not', () => {
  const m = new UnavailableValueMatcher()
  assert.ok(m.matches(P))
  assert.ok(m.matches(Buffer.from(P)))
  assert.ok(m.matches(new Uint8Array(Buffer.from(P))))
  assert.ok(m.matches(P_BASE64))
  assert.ok(m.matches([P]))
  for (const v of [null, undefined, '', 'hello', `${P} `, [P, P], [], 42, { value: P }, Buffer.from('x')])
    assert.equal(m.matches(v), false, JSON.stringify(v))
  assert.deepEqual(m.columns({ id: 1, body: P, tags: [P], blob: P_BASE64, status: 'open' }), ['body', 'tags', 'blob'])
})

test("a configured placeholder, including the connector's hex: form, replaces the default one", () => {
  const custom = new UnavailableValueMatcher('<toast>')
  assert.ok(custom.matches('<toast>'))
  assert.equal(custom.matches(P), false)
  const hex = new UnavailableValueMatcher('hex:deadbeef')
  assert.ok(hex.matches(Buffer.from([0xde, 0xad, 0xbe, 0xef])))
  assert.ok(hex.matches(Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString('base64')))
  assert.equal(hex.matches('hex:deadbeef'), false)
  assert.throws(() => new UnavailableValueMatcher('hex:xyz'), /hex octets/)
  assert.throws(() => new UnavailableValueMatcher(''), /must not be empty/)
})

const connectSchema = {
  type: 'struct',
  name: 'pg.public.tickets.Envelope',
  fields: [
    {
      field: 'after',
      type: 'struct',
      optional: true,
      fields: [
        { field: 'id', type: 'int32' },
        { field: 'body', type: 'string', optional: true },
        { field: 'blob', type: 'bytes', optional: true },
        {
          field: 'price',
          type: 'bytes',
          optional: true,
          name: 'org.apache.kafka.connect.data.Decimal',
          parameters: { scale: '2' },
        },
      ],
    },
    { field: 'op', type: 'string' },
  ],
}

test('JSON with and without schemas: placeholder columns are listed, left unconverted, other columns convert', () => {
  const after = { id: 1, body: P, blob: P_BASE64, price: Buffer.from([0x30, 0x39]).toString('base64') }
  const envelope = { before: null, after, op: 'u', source: { ts_ms: 1, lsn: 10, schema: 'public', table: 'tickets' } }

  const withSchema = upsert(
    new DebeziumDecoder({ valueFormat: 'json', semanticTypes: 'convert' }).decode(
      record({ schema: connectSchema, payload: envelope }),
    ),
  )
  assert.deepEqual(withSchema.unavailable, ['body', 'blob'])
  assert.deepEqual(withSchema.row, { id: 1, body: P, blob: P_BASE64, price: '123.45' })

  const schemaless = upsert(new DebeziumDecoder({ valueFormat: 'json' }).decode(record(envelope)))
  assert.deepEqual(schemaless.unavailable, ['body', 'blob'])

  const complete = upsert(
    new DebeziumDecoder({ valueFormat: 'json' }).decode(record({ ...envelope, after: { id: 1, body: 'text' } })),
  )
  assert.equal(complete.unavailable, undefined)

  // A delete's before row is never inspected: a delete needs no column values.
  const del = new DebeziumDecoder({ valueFormat: 'json' }).decode(
    record({ ...envelope, op: 'd', after: null, before: after }),
  )
  assert.equal(del.kind, 'delete')

  const custom = upsert(
    new DebeziumDecoder({ valueFormat: 'json', unavailableValuePlaceholder: '~gone~' }).decode(
      record({ ...envelope, after: { id: 1, body: '~gone~', blob: P } }),
    ),
  )
  assert.deepEqual(custom.unavailable, ['body'], 'only the configured placeholder counts')
})

test('Avro: placeholders in a string, a bytes and an array column; the Decimal column still converts', async (t) => {
  const topic = uniqueName('pg.public.toast')
  const ns = 'pg.public.toast'
  const row = {
    type: 'record',
    name: 'Value',
    namespace: ns,
    fields: [
      { name: 'id', type: 'int' },
      { name: 'body', type: ['null', 'string'], default: null },
      { name: 'blob', type: ['null', 'bytes'], default: null },
      { name: 'tags', type: ['null', { type: 'array', items: 'string' }], default: null },
      {
        name: 'price',
        type: [
          'null',
          {
            type: 'bytes',
            'connect.name': 'org.apache.kafka.connect.data.Decimal',
            'connect.parameters': { scale: '2' },
            logicalType: 'decimal',
            precision: 10,
            scale: 2,
          },
        ],
        default: null,
      },
    ],
  }
  const envelopeSchema = {
    type: 'record',
    name: 'Envelope',
    namespace: ns,
    fields: [
      { name: 'before', type: ['null', row], default: null },
      { name: 'after', type: ['null', `${ns}.Value`], default: null },
      { name: 'op', type: 'string' },
    ],
  }
  const keyId = await registerAvro(t, `${topic}-key`, {
    type: 'record',
    name: 'Key',
    namespace: ns,
    fields: [{ name: 'id', type: 'int' }],
  })
  const valueId = await registerAvro(t, `${topic}-value`, envelopeSchema)
  const encoder = registry()
  const after = { id: 1, body: P, blob: Buffer.from(P), tags: [P], price: Buffer.from([0x30, 0x39]) }
  const encoded: EncodedRecord = {
    topic,
    partition: 0,
    offset: 0n,
    timestamp: 0n,
    key: await encoder.encode(keyId, { id: 1 }),
    value: await encoder.encode(valueId, { before: null, after, op: 'u' }),
  }
  const decoder = new DebeziumDecoder({
    valueFormat: 'avro',
    semanticTypes: 'convert',
    avro: new AvroWireDecoder(registry(), registryUrl, { rawSchemas: true }),
  })
  await decoder.prepare([encoded])
  const change = upsert(decoder.decode(encoded))
  assert.deepEqual(change.unavailable, ['body', 'blob', 'tags'])
  assert.equal(change.row.price, '123.45')
  assert.equal(change.row.body, P)
})

function ticketsDriver(redacted = false) {
  const b = new TopologyBuilder({ applicationId: 'toast' })
  const { decode } = cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }), { lineageField: false })
  b.cdcTable('pg.public.tickets', { name: 'tickets', decode: redacted ? redactAtSource(decode) : decode }).to('out')
  return new TopologyTestDriver(b.build(), { partitions: 1 })
}

const change = (op: string, after: Record<string, unknown> | null) => ({
  before: null,
  after,
  op,
  source: { ts_ms: 1, lsn: 1, schema: 'public', table: 'tickets' },
})

test('an unchanged-TOAST update takes the previous body from the table store; the placeholder never flows on', async () => {
  const driver = ticketsDriver()
  const body = 'x'.repeat(8000)
  await driver.pipe('pg.public.tickets', '{"id":1}', change('c', { id: 1, status: 'open', body, tags: ['a'] }))
  await driver.pipe('pg.public.tickets', '{"id":1}', change('u', { id: 1, status: 'closed', body: P, tags: [P] }))
  await driver.pipe('pg.public.tickets', '{"id":1}', change('u', { id: 1, status: 'reopened', body: P, tags: ['b'] }))
  const out = driver.readOutput('out').map((r) => r.value as Record<string, unknown>)
  assert.deepEqual(
    out.map((v) => [v.status, v.body === body, v.tags]),
    [
      ['open', true, ['a']],
      ['closed', true, ['a']],
      ['reopened', true, ['b']],
    ],
  )
  assert.ok(!JSON.stringify(out).includes(P))
  assert.ok(!JSON.stringify([...driver.readStore('tickets').values()]).includes(P))
  assert.equal(driver.readDeadLetters().length, 0)
})

test('an unchanged-TOAST update with no previous row is dead-lettered naming REPLICA IDENTITY FULL, and indexes nothing', async () => {
  const driver = ticketsDriver()
  await driver.pipe('pg.public.tickets', '{"id":2}', change('u', { id: 2, status: 'closed', body: P }))
  // The previous row lacks the column (added by ALTER TABLE since): no previous value either.
  await driver.pipe('pg.public.tickets', '{"id":3}', change('c', { id: 3, status: 'open' }))
  await driver.pipe('pg.public.tickets', '{"id":3}', change('u', { id: 3, status: 'closed', notes: P }))
  const dead = driver.readDeadLetters()
  assert.equal(dead.length, 2)
  for (const [i, key] of ['2', '3'].entries()) {
    assert.equal(dead[i].headers[DEAD_LETTER_HEADERS.code], 'RS_DECODE_FAILED')
    assert.match(
      dead[i].headers[DEAD_LETTER_HEADERS.message],
      new RegExp(`key ${key}: column (body|notes) arrived as the unchanged-TOAST placeholder`),
    )
    assert.match(dead[i].headers[DEAD_LETTER_HEADERS.message], /REPLICA IDENTITY FULL/)
    assert.equal(dead[i].headers[DEAD_LETTER_HEADERS.node], 'tickets')
  }
  assert.deepEqual(
    driver.readOutput('out').map((r) => [r.key, (r.value as { status: string }).status]),
    [['3', 'open']],
  )
  assert.deepEqual([...driver.readStore('tickets').keys()], ['3'])
  assert.equal(
    (driver.readTable('out').get('3') as { status: string }).status,
    'open',
    'the failed update changed nothing',
  )
})

test('behind redactAtSource the restored column is the previous, already redacted, value', async () => {
  const driver = ticketsDriver(true)
  const body = `Please call me back, write to jane.doe@example.com. ${'details '.repeat(900)}`
  await driver.pipe('pg.public.tickets', '{"id":1}', change('c', { id: 1, status: 'open', body }))
  await driver.pipe('pg.public.tickets', '{"id":1}', change('u', { id: 1, status: 'closed', body: P }))
  const out = driver.readOutput('out').map((r) => r.value as { status: string; body: string })
  assert.equal(out.length, 2)
  assert.equal(out[1].status, 'closed')
  assert.equal(out[1].body, out[0].body)
  assert.ok(!out[1].body.includes('jane.doe@example.com'), 'redacted')
  assert.ok(out[1].body.includes('details'))
  assert.equal(driver.readDeadLetters().length, 0)
})
