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
  isValid(value: unknown, options?: { errorHook: (path: string[], value: unknown) => void }): boolean
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER)
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/**
 * Avro `long` as a JS number when it fits in 53 bits and as a bigint beyond. avsc's default long
 * throws on larger values, and Debezium sends some (`ts_ns`, 64-bit ids), which would dead-letter
 * perfectly good records. Writes accept numbers and bigints.
 */
export const SAFE_LONG: avsc.Type = avsc.types.LongType.__with({
  fromBuffer: (buffer: Buffer) => {
    const n = buffer.readBigInt64LE()
    return n >= MIN_SAFE && n <= MAX_SAFE ? Number(n) : n
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

/** avsc `forSchema` options ragstream uses everywhere: 64-bit-safe longs. A new object per call: avsc stores its name registry in it. */
export const avroTypeOptions = (): { typeHook: typeof longHook } => ({ typeHook: longHook })

function longHook(schema: unknown): avsc.Type | undefined {
  if (schema === 'long') return SAFE_LONG
  if (typeof schema === 'object' && schema !== null && (schema as { type?: unknown }).type === 'long') return SAFE_LONG
  return undefined
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
