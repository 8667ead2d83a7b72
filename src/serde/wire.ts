/**
 * Confluent wire format, the framing every Confluent-compatible client (Java serializers, kafkajs'
 * registry client, Kafka Connect's AvroConverter, Debezium with Avro) puts around a payload:
 *
 *   byte 0      magic byte 0x00
 *   bytes 1-4   schema id, unsigned 32-bit big-endian, as assigned by the schema registry
 *   bytes 5-    the Avro binary encoding of the value under that (writer) schema
 */
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import avsc from 'avsc'
import { ServiceUnavailableError } from '../errors.ts'
import { redactUrl } from '../config/endpoints.ts'
import { basicAuth, splitCredentials } from '../security/secrets.ts'

export const WIRE_MAGIC_BYTE = 0
export const WIRE_HEADER_BYTES = 5

/** The schema id of a wire-format buffer, or undefined when the buffer is not in the wire format. */
export function wireSchemaId(buffer: Buffer): number | undefined {
  if (buffer.length < WIRE_HEADER_BYTES || buffer[0] !== WIRE_MAGIC_BYTE) return undefined
  return buffer.readUInt32BE(1)
}

export function wireHeader(schemaId: number): Buffer {
  const header = Buffer.allocUnsafe(WIRE_HEADER_BYTES)
  header[0] = WIRE_MAGIC_BYTE
  header.writeUInt32BE(schemaId, 1)
  return header
}

/** The part of an avsc `Type` the codecs use. */
export interface AvroType {
  fromBuffer(buffer: Buffer): unknown
  toBuffer(value: unknown): Buffer
  /** Writes `value` into `buffer` from `pos`: the end position, or minus the bytes missing when it did not fit. */
  encode(value: unknown, buffer: Buffer, pos: number): number
  isValid(value: unknown, options?: { errorHook: (path: string[], value: unknown) => void }): boolean
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER)
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const TWO_32 = 2 ** 32
// A high word strictly between these makes a value within ±(2^53 − 2^32): a safe integer, no BigInt needed.
const SAFE_HIGH = 2 ** 21 - 1
/**
 * avsc packs the 8 bytes `toBuffer` returns into the varint at once and keeps nothing: one buffer
 * serves every write (encoding is synchronous), instead of a new one per long.
 */
const LONG_BYTES = Buffer.alloc(8)

/**
 * Avro `long` as a JS number when it fits in 53 bits and as a bigint beyond. avsc's default long
 * throws on larger values, and Debezium sends some (`ts_ns`, 64-bit ids), which would dead-letter
 * perfectly good records. Writes accept numbers and bigints. The bytes are little-endian two's
 * complement (avsc's contract for `toBuffer`/`fromBuffer`); numbers go through two 32-bit words,
 * so the common case (offsets, epoch ms) allocates no BigInt.
 */
export const SAFE_LONG: avsc.Type = avsc.types.LongType.__with({
  fromBuffer: (buffer: Buffer) => {
    const high = buffer.readInt32LE(4)
    if (high > -SAFE_HIGH && high < SAFE_HIGH) return high * TWO_32 + buffer.readUInt32LE(0)
    const n = buffer.readBigInt64LE()
    return n >= MIN_SAFE && n <= MAX_SAFE ? Number(n) : n
  },
  toBuffer: (n: number | bigint) => {
    if (typeof n === 'number' && Number.isSafeInteger(n)) {
      LONG_BYTES.writeUInt32LE(n >>> 0, 0)
      LONG_BYTES.writeInt32LE(Math.floor(n / TWO_32), 4)
    } else LONG_BYTES.writeBigInt64LE(BigInt(n))
    return LONG_BYTES
  },
  fromJSON: (n: number | string) => (typeof n === 'number' ? n : BigInt(n)),
  toJSON: (n: number | bigint) => (typeof n === 'bigint' ? n.toString() : n),
  isValid: (n: unknown) => (typeof n === 'number' && Number.isInteger(n)) || typeof n === 'bigint',
  compare: (a: number | bigint, b: number | bigint) => (a < b ? -1 : a > b ? 1 : 0),
})

/**
 * avsc `forSchema` options ragstream uses everywhere: 64-bit-safe longs. A new object per call: avsc
 * stores its name registry in it. With `float32Arrays`, `array<float>` fields also accept a
 * Float32Array (see Float32ArrayType), for writers that hold vectors as such.
 */
export const avroTypeOptions = (
  options: { readonly float32Arrays?: boolean | 'read-write' } = {},
): { typeHook: (schema: unknown, options: unknown) => avsc.Type | undefined } => ({
  typeHook:
    options.float32Arrays === 'read-write' ? float32ArrayReadHook : options.float32Arrays ? float32ArrayHook : longHook,
})

function longHook(schema: unknown): avsc.Type | undefined {
  if (schema === 'long') return SAFE_LONG
  if (typeof schema === 'object' && schema !== null && (schema as { type?: unknown }).type === 'long') return SAFE_LONG
  return undefined
}

/** avsc's internals a writer uses (lib/utils.js Tap, lib/types.js `_write`/`_check`): pinned by test/serde/wire.test.ts. */
interface Tap {
  buf: Buffer
  pos: number
  writeLong(n: number): void
  readLong(): number
  skipLong(): void
}
type ArrayTypeInternals = {
  _write(tap: Tap, value: unknown): void
  _read(tap: Tap): unknown
  _check(value: unknown, flags: unknown, hook: unknown, path: unknown): boolean
}
const ArrayType = avsc.types.ArrayType as unknown as new (schema: unknown, options: unknown) => ArrayTypeInternals
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * `array<float>` that writes a Float32Array as one copy of its bytes (Avro floats are little-endian
 * IEEE 754, which a Float32Array holds on a little-endian machine) instead of a float at a time,
 * and without first copying it into an Array (avsc's arrays must be Arrays). The bytes are avsc's:
 * the count, the floats, the 0 that ends the blocks. A vector holding a NaN goes the element-wise
 * way, so its NaNs are written as avsc writes them. Anything else (an Array) is avsc's own path. Not
 * in a union: avsc picks a union branch by the value's JS type, and a Float32Array is no Array there.
 */
class Float32ArrayType extends ArrayType {
  override _write(tap: Tap, value: unknown): void {
    if (!(value instanceof Float32Array) || !LITTLE_ENDIAN || hasNaN(value))
      return super._write(tap, value instanceof Float32Array ? Array.from(value) : value)
    const n = value.length
    if (n > 0) {
      tap.writeLong(n)
      const start = tap.pos
      tap.pos += 4 * n
      // Past the end: avsc's encode reports the missing bytes and the caller writes again.
      if (tap.pos <= tap.buf.length) tap.buf.set(new Uint8Array(value.buffer, value.byteOffset, 4 * n), start)
    }
    tap.writeLong(0)
  }

  override _check(value: unknown, flags: unknown, hook: unknown, path: unknown): boolean {
    return value instanceof Float32Array || super._check(value, flags, hook, path)
  }
}

function hasNaN(vector: Float32Array): boolean {
  for (let i = 0; i < vector.length; i++) if (vector[i] !== vector[i]) return true
  return false
}

/**
 * Reads `array<float>` as a Float32Array, its bytes copied at once (a reader that only needs the
 * floats, e.g. to format them, skips an element-wise read into an Array). Every block of the array
 * is read (a writer may split it); a truncated one leaves the tap past its end, which avsc reports.
 */
class Float32ArrayReadType extends Float32ArrayType {
  override _read(tap: Tap): unknown {
    if (!LITTLE_ENDIAN) return Float32Array.from(super._read(tap) as number[])
    const blocks: number[] = []
    let total = 0
    for (let n = tap.readLong(); n !== 0; n = tap.readLong()) {
      if (n < 0) {
        n = -n
        tap.skipLong() // the block's size in bytes
      }
      blocks.push(tap.pos, n)
      total += n
      tap.pos += 4 * n
    }
    const vector = new Float32Array(total)
    if (tap.pos > tap.buf.length) return vector
    const bytes = new Uint8Array(vector.buffer)
    for (let i = 0, at = 0; i < blocks.length; i += 2) {
      bytes.set(tap.buf.subarray(blocks[i], blocks[i] + 4 * blocks[i + 1]), at)
      at += 4 * blocks[i + 1]
    }
    return vector
  }
}

const isFloatArray = (schema: unknown): boolean => {
  const s = schema as { type?: unknown; items?: unknown } | null
  return (
    typeof s === 'object' &&
    s !== null &&
    s.type === 'array' &&
    (s.items === 'float' || (s.items as { type?: unknown } | null)?.type === 'float')
  )
}

function float32ArrayHook(schema: unknown, options: unknown): avsc.Type | undefined {
  if (isFloatArray(schema)) return new Float32ArrayType(schema, options) as unknown as avsc.Type
  return longHook(schema)
}

function float32ArrayReadHook(schema: unknown, options: unknown): avsc.Type | undefined {
  if (isFloatArray(schema)) return new Float32ArrayReadType(schema, options) as unknown as avsc.Type
  return longHook(schema)
}

/** A registry client for a Confluent-compatible API (Confluent, Apicurio's ccompat, Redpanda, Karapace), with 64-bit-safe longs. */
export function createSchemaRegistry(url: string): SchemaRegistry {
  // Credentials go in the Authorization header, never in the URL (fetch refuses it and quotes it whole).
  const { url: host, username, password } = splitCredentials(url)
  return new SchemaRegistry(
    {
      host: host.replace(/\/+$/, ''),
      retry: { retries: 2 },
      ...(username !== undefined ? { auth: { username, password: password ?? '' } } : {}),
    },
    { [SchemaType.AVRO]: { typeHook: longHook as never } },
  )
}

/**
 * Decodes wire-format Avro synchronously once the batch's schema ids are known: `prepare` fetches
 * every writer schema a batch needs (once per id, then cached forever — ids are immutable), so the
 * per-record path does no I/O. Decoding uses the writer schema, so added or removed columns simply
 * show up or vanish in the decoded record.
 */
export class AvroWireDecoder {
  readonly #registry: SchemaRegistry
  readonly #url: string
  readonly #headers: Record<string, string>
  readonly #address: string
  readonly #types = new Map<number, AvroType>()
  readonly #rawSchemas: Map<number, unknown> | undefined

  /**
   * `url` is the registry's (the same the client uses). With `rawSchemas`, `prepare` also keeps each
   * writer schema's JSON with its custom attributes (e.g. Kafka Connect's `connect.name`), which
   * avsc types do not expose.
   */
  constructor(registry: SchemaRegistry, url: string, options: { rawSchemas?: boolean } = {}) {
    this.#registry = registry
    const auth = basicAuth(url)
    this.#url = auth.url.replace(/\/+$/, '')
    this.#headers = auth.headers
    this.#address = redactUrl(url)
    this.#rawSchemas = options.rawSchemas ? new Map() : undefined
  }

  get keepsRawSchemas(): boolean {
    return this.#rawSchemas !== undefined
  }

  /** The writer schema JSON of a prepared buffer (only with `rawSchemas`). */
  rawSchema(buffer: Buffer): unknown {
    const id = wireSchemaId(buffer)
    return id === undefined ? undefined : this.#rawSchemas?.get(id)
  }

  async #fetchRaw(id: number): Promise<void> {
    try {
      const response = await fetch(`${this.#url}/schemas/ids/${id}`, {
        headers: this.#headers,
        signal: AbortSignal.timeout(10_000),
      })
      if (response.status === 404) return
      if (!response.ok) throw new Error(`HTTP ${response.status}`)
      const { schema } = (await response.json()) as { schema: string }
      this.#rawSchemas?.set(id, JSON.parse(schema))
    } catch (error) {
      throw new ServiceUnavailableError('the schema registry', this.#address, error)
    }
  }

  /** Fetches the writer schemas of these buffers that are not cached yet. Buffers not in the wire format are ignored here (decode reports them). */
  async prepare(buffers: Iterable<Buffer | null>): Promise<void> {
    const missing = new Set<number>()
    for (const buffer of buffers) {
      if (buffer === null) continue
      const id = wireSchemaId(buffer)
      if (id !== undefined && !this.#types.has(id)) missing.add(id)
    }
    await Promise.all(
      [...missing].map(async (id) => {
        // An unknown id is left out: decode() then reports it for this record only.
        const type = await this.#registry.getSchema(id).catch((error: unknown) => {
          if (isNotFound(error)) return undefined
          throw new ServiceUnavailableError('the schema registry', this.#address, error)
        })
        if (type !== undefined) this.#types.set(id, type as unknown as AvroType)
        if (type !== undefined && this.#rawSchemas) await this.#fetchRaw(id)
      }),
    )
  }

  /** Decodes one prepared buffer; throws a plain Error describing the problem (callers wrap it with the record position). */
  decode(buffer: Buffer): unknown {
    const id = wireSchemaId(buffer)
    if (id === undefined)
      throw new Error(`not in the Confluent wire format (magic byte ${buffer[0] ?? 'missing'}, ${buffer.length} bytes)`)
    const type = this.#types.get(id)
    if (type === undefined) throw new Error(`schema id ${id} is unknown to the schema registry`)
    return type.fromBuffer(buffer.subarray(WIRE_HEADER_BYTES))
  }
}

function isNotFound(error: unknown): boolean {
  const e = error as { status?: number; message?: string } | null
  return e?.status === 404 || /not found|40403|404/i.test(e?.message ?? '')
}
