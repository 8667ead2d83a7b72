import assert from 'node:assert/strict'
import { test } from 'node:test'
import avsc from 'avsc'
import { avroTypeOptions, SAFE_LONG, wireHeader, wireSchemaId } from '../../src/serde/wire.ts'

// What SAFE_LONG wrote and read before its number fast path: every value through a BigInt.
const REFERENCE = avsc.types.LongType.__with({
  fromBuffer: (buffer: Buffer) => {
    const n = buffer.readBigInt64LE()
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
  },
  toBuffer: (n: number | bigint) => {
    const buffer = Buffer.alloc(8)
    buffer.writeBigInt64LE(BigInt(n))
    return buffer
  },
  fromJSON: (n: number | string) => (typeof n === 'number' ? n : BigInt(n)),
  toJSON: (n: number | bigint) => (typeof n === 'bigint' ? n.toString() : n),
  isValid: (n: unknown) => (typeof n === 'number' && Number.isInteger(n)) || typeof n === 'bigint',
  compare: (a: number | bigint, b: number | bigint) => (a < b ? -1 : a > b ? 1 : 0),
})

function longs(): (number | bigint)[] {
  const values: (number | bigint)[] = [
    0,
    1,
    -1,
    63,
    64,
    -64,
    -65,
    2 ** 31 - 1,
    -(2 ** 31),
    2 ** 31,
    2 ** 32 - 1,
    2 ** 32,
  ]
  values.push(
    -(2 ** 32),
    2 ** 32 + 1,
    1_764_150_000_000,
    -1_764_150_000_000,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
  )
  values.push(2 ** 53 - 2 ** 32, -(2 ** 53 - 2 ** 32), 2 ** 52 + 12345, -(2 ** 52) - 12345)
  values.push(2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n), 123456789012345678n, -123456789012345678n)
  let seed = 7
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31)
  for (let i = 0; i < 5000; i++) {
    const magnitude = 2 ** (next() % 54)
    const n = Math.floor((next() / 2 ** 31) * magnitude) * (next() % 2 === 0 ? 1 : -1)
    values.push(Number.isSafeInteger(n) ? n : 0)
  }
  return values
}

test('SAFE_LONG writes and reads every long as the BigInt form did: numbers up to 53 bits, bigints beyond', () => {
  for (const n of longs()) {
    const bytes = SAFE_LONG.toBuffer(n)
    assert.deepEqual(bytes, REFERENCE.toBuffer(n), `write ${n}`)
    const read = SAFE_LONG.fromBuffer(bytes)
    assert.equal(read, REFERENCE.fromBuffer(bytes), `read ${n}`)
    assert.equal(typeof read, Number.isSafeInteger(Number(n)) && BigInt(Number(n)) === BigInt(n) ? 'number' : 'bigint')
  }
})

test('SAFE_LONG inside a record: several longs in one value encode as before (the shared 8-byte buffer is consumed per field)', () => {
  const schema = {
    type: 'record',
    name: 'Times',
    fields: [
      { name: 'a', type: 'long' },
      { name: 'b', type: 'long' },
      { name: 'c', type: { type: 'array', items: 'long' } },
    ],
  } as avsc.Schema
  const fast = avsc.Type.forSchema(schema, avroTypeOptions() as never)
  const reference = avsc.Type.forSchema(schema, { typeHook: (s) => (s === 'long' ? REFERENCE : undefined) })
  const value = { a: 1_764_150_000_000, b: -(2n ** 60n), c: [0, -1, 2 ** 40, Number.MAX_SAFE_INTEGER, 2n ** 62n] }
  const bytes = fast.toBuffer(value)
  assert.deepEqual(bytes, reference.toBuffer(value))
  assert.deepEqual({ ...(fast.fromBuffer(bytes) as object) }, { ...(reference.fromBuffer(bytes) as object) })
})

test('the wire header: magic byte 0 and the schema id, big-endian', () => {
  const header = wireHeader(0x01020304)
  assert.deepEqual([...header], [0, 1, 2, 3, 4])
  assert.equal(wireSchemaId(Buffer.concat([header, Buffer.from([9])])), 0x01020304)
  assert.equal(wireSchemaId(Buffer.from([1, 0, 0, 0, 1])), undefined)
})

test('with float32Arrays, array<float> takes a Float32Array as one copy: the same bytes as avsc writes from an Array, NaN and growth included', () => {
  const schema = {
    type: 'record',
    name: 'Vec',
    fields: [
      { name: 'id', type: 'long' },
      { name: 'v', type: { type: 'array', items: 'float' } },
      { name: 'w', type: { type: 'array', items: { type: 'float' } } },
    ],
  } as avsc.Schema
  const typed = avsc.Type.forSchema(schema, avroTypeOptions({ float32Arrays: true }) as never)
  const plain = avsc.Type.forSchema(schema, avroTypeOptions() as never)
  const vectors = [
    new Float32Array([]),
    new Float32Array([0.5, -0, -1.25e-30, 3.4e38, Infinity, -Infinity, 1e-45]),
    Float32Array.from({ length: 384 }, (_, i) => Math.sin(i) / 7),
    new Float32Array([1, NaN, 2]),
    // A view into a larger buffer, at an offset.
    new Float32Array(Float32Array.from({ length: 20 }, (_, i) => i / 3).buffer, 8, 10),
  ]
  for (const v of vectors) {
    const value = { id: 2 ** 40, v, w: v }
    const expected = plain.toBuffer({ id: 2 ** 40, v: Array.from(v), w: Array.from(v) })
    assert.deepEqual(typed.toBuffer(value), expected, `${v.length} floats`)
    // encode into a buffer that is too small: the bytes missing, as avsc reports them; then it fits.
    assert.equal(typed.encode(value, Buffer.alloc(expected.length - 1), 0), -1)
    assert.equal(typed.encode(value, Buffer.alloc(4), 0), 4 - expected.length)
    const fits = Buffer.alloc(expected.length + 3)
    assert.equal(typed.encode(value, fits, 3), expected.length + 3)
    assert.deepEqual(fits.subarray(3), expected)
    // Read back as avsc reads: Arrays of numbers.
    const read = typed.fromBuffer(expected) as unknown as { v: number[] }
    assert.ok(Array.isArray(read.v))
    assert.deepEqual(read.v, Array.from(v))
  }
  // Arrays still work, and validation accepts both.
  assert.deepEqual(typed.toBuffer({ id: 1, v: [1, 2], w: [] }), plain.toBuffer({ id: 1, v: [1, 2], w: [] }))
  assert.equal(typed.isValid({ id: 1, v: new Float32Array(2), w: [] }), true)
  assert.equal(typed.isValid({ id: 1, v: 'no', w: [] }), false)
})

test("with float32Arrays 'read-write', array<float> reads into a Float32Array: every block, the same floats; truncated is an error", () => {
  const schema = { type: 'array', items: 'float' } as avsc.Schema
  const reader = avsc.Type.forSchema(schema, avroTypeOptions({ float32Arrays: 'read-write' }) as never)
  const plain = avsc.Type.forSchema(schema)
  const floats = Array.from({ length: 384 }, (_, i) => Math.fround(Math.cos(i) * 10 ** ((i % 20) - 10)))
  const one = plain.toBuffer(floats)
  const read = reader.fromBuffer(one) as Float32Array
  assert.ok(read instanceof Float32Array)
  assert.deepEqual(Array.from(read), floats)
  assert.deepEqual(Array.from(reader.fromBuffer(plain.toBuffer([])) as Float32Array), [])
  // Two blocks, the second with its byte size (a negative count): as another writer may split it.
  const long = avsc.Type.forSchema('long')
  const f = avsc.Type.forSchema('float')
  const blocks = Buffer.concat([
    long.toBuffer(2),
    f.toBuffer(1.5),
    f.toBuffer(-2),
    long.toBuffer(-1),
    long.toBuffer(4),
    f.toBuffer(3.25),
    long.toBuffer(0),
  ])
  assert.deepEqual(Array.from(reader.fromBuffer(blocks) as Float32Array), [1.5, -2, 3.25])
  assert.deepEqual(plain.fromBuffer(blocks), [1.5, -2, 3.25])
  assert.throws(() => reader.fromBuffer(one.subarray(0, one.length - 3)), /truncated/)
})
