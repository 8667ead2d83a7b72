/**
 * Avro values in the Confluent wire format (see wire.ts), registered under `<topic>-value`.
 *
 * Startup (`AvroValueCodec.forTopic`), before any record is produced:
 *   1. the subject's compatibility level is set to the topology's (default BACKWARD) if it differs;
 *   2. if the subject already has versions, the schema is checked against the latest one; an
 *      incompatible schema fails here with RS_SCHEMA_INCOMPATIBLE naming the subject, the level and
 *      what breaks (avsc's resolver says which field), instead of failing later per record;
 *   3. the schema is registered (idempotent: an identical schema gets its existing id).
 * After that, encoding is synchronous and does no I/O. Decoding resolves writer schemas per batch
 * (`prepare`), then decodes synchronously with the writer schema.
 */
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import { SchemaType } from '@kafkajs/confluent-schema-registry'
import avsc from 'avsc'
import { RagstreamError, ServiceUnavailableError } from '../errors.ts'
import { redactUrl } from '../config/endpoints.ts'
import { basicAuth } from '../security/secrets.ts'
import {
  avroTypeOptions,
  AvroWireDecoder,
  createSchemaRegistry,
  WIRE_HEADER_BYTES,
  wireHeader,
  type AvroType,
} from './wire.ts'

export type Compatibility =
  'BACKWARD' | 'BACKWARD_TRANSITIVE' | 'FORWARD' | 'FORWARD_TRANSITIVE' | 'FULL' | 'FULL_TRANSITIVE' | 'NONE'

export interface AvroValueCodecOptions {
  readonly registryUrl: string
  readonly topic: string
  /** The Avro schema (parsed JSON), e.g. CHUNK_EVENT_SCHEMA. */
  readonly schema: Readonly<Record<string, unknown>>
  /** Default BACKWARD: consumers with the new schema can read everything already on the topic. */
  readonly compatibility?: Compatibility
  /** Reuse a registry client (and its schema cache). */
  readonly registry?: SchemaRegistry
  /** `array<float>` fields also take a Float32Array, written as one copy (wire.ts, Float32ArrayType). */
  readonly float32Arrays?: boolean
}

/** The Avro encoding of one value type for one topic. `T` is the record shape; null is a tombstone. */
export class AvroValueCodec<T> {
  readonly subject: string
  readonly schemaId: number
  readonly #type: AvroType
  /**
   * Where `encode` writes: the wire header, then the body, in one pass (avsc's `toBuffer` writes a
   * value larger than its 1 KiB buffer twice, and the header was concatenated after). Encoding is
   * synchronous, so one per codec; it grows to the largest value encoded.
   */
  #scratch: Buffer
  readonly #decoder: AvroWireDecoder
  readonly #toAvro: (value: T) => unknown

  private constructor(
    subject: string,
    schemaId: number,
    type: AvroType,
    decoder: AvroWireDecoder,
    toAvro: (value: T) => unknown,
  ) {
    this.subject = subject
    this.schemaId = schemaId
    this.#type = type
    this.#scratch = Buffer.alloc(4096)
    wireHeader(schemaId).copy(this.#scratch)
    this.#decoder = decoder
    this.#toAvro = toAvro
  }

  /** Checks compatibility and registers the schema; throws RS_SCHEMA_INCOMPATIBLE or RS_SERVICE_UNAVAILABLE. */
  static async forTopic<T>(
    options: AvroValueCodecOptions,
    toAvro: (value: T) => unknown = (v) => v,
  ): Promise<AvroValueCodec<T>> {
    const subject = `${options.topic}-value`
    const registry = options.registry ?? createSchemaRegistry(options.registryUrl)
    const level = options.compatibility ?? 'BACKWARD'
    const api = new RegistryApi(options.registryUrl)
    const type = avsc.Type.forSchema(
      options.schema as avsc.Schema,
      avroTypeOptions({ float32Arrays: options.float32Arrays }) as unknown as Partial<avsc.ForSchemaOptions>,
    ) as unknown as AvroType

    await api.ensureCompatibility(subject, level)
    const latest = await api.latest(subject)
    if (latest !== undefined) {
      const compatible = await api.isCompatible(subject, options.schema)
      if (!compatible)
        throw incompatible(subject, level, latest, options.schema, await api.registerError(subject, options.schema))
    }
    let id: number
    try {
      id = (
        await registry.register(
          { type: SchemaType.AVRO, schema: JSON.stringify(options.schema) },
          { subject, compatibility: level as never },
        )
      ).id
    } catch (error) {
      const status = (error as { status?: number }).status
      if (status === 409) throw incompatible(subject, level, latest, options.schema, (error as Error).message)
      throw new ServiceUnavailableError('the schema registry', redactUrl(options.registryUrl), error)
    }
    return new AvroValueCodec<T>(subject, id, type, new AvroWireDecoder(registry, options.registryUrl), toAvro)
  }

  /** Wire-format bytes, or null for a tombstone. Throws RS_RECORD_INVALID naming the bad fields. */
  encode(value: T | null): Buffer | null {
    if (value === null) return null
    const avroValue = this.#toAvro(value)
    let end: number
    try {
      end = this.#type.encode(avroValue, this.#scratch, WIRE_HEADER_BYTES)
      // Negative: the value did not fit, by -end bytes (avsc stops writing but counts): grow, write again.
      if (end < 0) end = this.#type.encode(avroValue, this.#grow(this.#scratch.length - end), WIRE_HEADER_BYTES)
    } catch (error) {
      const paths: string[] = []
      this.#type.isValid(avroValue, { errorHook: (path) => paths.push(path.join('.') || '(root)') })
      throw new RagstreamError(
        'RS_RECORD_INVALID',
        `value does not match the schema of ${this.subject}: ${paths.length ? `invalid ${paths.join(', ')}` : (error as Error).message}`,
        {
          context: { subject: this.subject, fields: paths },
          cause: error,
        },
      )
    }
    const bytes = Buffer.allocUnsafe(end)
    this.#scratch.copy(bytes, 0, 0, end)
    return bytes
  }

  /** A scratch buffer of at least `bytes` (at least twice the old one), the wire header kept. */
  #grow(bytes: number): Buffer {
    const scratch = Buffer.alloc(Math.max(bytes, 2 * this.#scratch.length))
    this.#scratch.copy(scratch, 0, 0, WIRE_HEADER_BYTES)
    this.#scratch = scratch
    return scratch
  }

  /** Fetches writer schemas the buffers need (other producers may have written newer or older versions). */
  prepare(buffers: Iterable<Buffer | null>): Promise<void> {
    return this.#decoder.prepare(buffers)
  }

  /** Decodes a prepared wire-format buffer (null = tombstone). Throws a plain Error for callers to wrap with the record position. */
  decode(buffer: Buffer | null): T | null {
    return buffer === null ? null : (this.#decoder.decode(buffer) as T)
  }
}

function incompatible(
  subject: string,
  level: string,
  latest: { version: number; schema: string } | undefined,
  schema: object,
  registryMessage: string | undefined,
): RagstreamError {
  let reason = registryMessage ?? ''
  if (latest !== undefined) {
    try {
      const reader = avsc.Type.forSchema(schema as avsc.Schema)
      const writer = avsc.Type.forSchema(JSON.parse(latest.schema) as avsc.Schema)
      if (level.startsWith('BACKWARD') || level.startsWith('FULL')) reader.createResolver(writer)
      if (level.startsWith('FORWARD') || level.startsWith('FULL')) writer.createResolver(reader)
    } catch (error) {
      reason = (error as Error).message + (reason ? `; registry: ${reason}` : '')
    }
  }
  return new RagstreamError(
    'RS_SCHEMA_INCOMPATIBLE',
    `schema for subject ${subject} is not ${level}-compatible with registered version ${latest?.version ?? '?'}${reason ? `: ${reason}` : ''}`,
    {
      context: { subject, compatibility: level, latestVersion: latest?.version },
      hint: 'evolve the schema compatibly (new fields need defaults, never change or remove a field without one), or write to a new topology version (new topic, new subject)',
    },
  )
}

/** The few registry endpoints the kafkajs client does not expose: subject config and compatibility checks. */
class RegistryApi {
  readonly #base: string
  readonly #address: string

  readonly #headers: Record<string, string>

  constructor(url: string) {
    const auth = basicAuth(url)
    this.#base = auth.url.replace(/\/+$/, '')
    this.#headers = auth.headers
    this.#address = redactUrl(url)
  }

  async #request(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> {
    try {
      const response = await fetch(`${this.#base}${path}`, {
        method,
        headers: {
          ...this.#headers,
          'content-type': 'application/vnd.schemaregistry.v1+json',
          accept: 'application/vnd.schemaregistry.v1+json, application/json',
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      })
      const text = await response.text()
      const json = text ? (JSON.parse(text) as Record<string, unknown>) : {}
      if (response.status >= 500) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`)
      return { status: response.status, json }
    } catch (error) {
      throw new ServiceUnavailableError('the schema registry', this.#address, error)
    }
  }

  async ensureCompatibility(subject: string, level: Compatibility): Promise<void> {
    const current = await this.#request('GET', `/config/${encodeURIComponent(subject)}`)
    if (current.status === 200 && current.json.compatibilityLevel === level) return
    const set = await this.#request('PUT', `/config/${encodeURIComponent(subject)}`, { compatibility: level })
    if (set.status !== 200)
      throw new ServiceUnavailableError(
        'the schema registry',
        this.#address,
        `setting compatibility of ${subject} to ${level}: HTTP ${set.status} ${JSON.stringify(set.json)}`,
      )
  }

  async latest(subject: string): Promise<{ version: number; schema: string } | undefined> {
    const r = await this.#request('GET', `/subjects/${encodeURIComponent(subject)}/versions/latest`)
    if (r.status === 404) return undefined
    if (r.status !== 200)
      throw new ServiceUnavailableError('the schema registry', this.#address, `reading ${subject}: HTTP ${r.status}`)
    return { version: Number(r.json.version), schema: String(r.json.schema) }
  }

  async isCompatible(subject: string, schema: object): Promise<boolean> {
    const r = await this.#request(
      'POST',
      `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest?verbose=true`,
      { schema: JSON.stringify(schema) },
    )
    if (r.status === 404) return true
    if (r.status !== 200)
      throw new ServiceUnavailableError(
        'the schema registry',
        this.#address,
        `compatibility check of ${subject}: HTTP ${r.status}`,
      )
    return r.json.is_compatible === true
  }

  /** The registry's own explanation, if any (Confluent: `messages` with verbose=true; Apicurio: only on register). */
  async registerError(subject: string, schema: object): Promise<string | undefined> {
    const r = await this.#request(
      'POST',
      `/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest?verbose=true`,
      { schema: JSON.stringify(schema) },
    )
    const messages = r.json.messages
    return Array.isArray(messages) && messages.length > 0 ? messages.map(String).join('; ') : undefined
  }
}
