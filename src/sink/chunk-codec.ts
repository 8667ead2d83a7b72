/**
 * Decodes chunk-topic records into what the sink writes. The value is Avro in the Confluent wire
 * format (byte 0 = 0x00, bytes 1-4 = schema id, then the Avro body); the writer schema's full name
 * says what the record is:
 *
 *   key: chunk id (UTF-8)   value: dev.ragstream.v1.ChunkEvent  → upsert
 *   key: chunk id (UTF-8)   value: null                         → tombstone (delete)
 *   key: event id (UTF-8)   value: dev.ragstream.v1.AuditEvent  → audit row, written with the batch
 *
 * Anything else becomes a reject row (code + message + position), never a silent drop and never a
 * stopped line. Uses the registry client directly until the shared serde module lands.
 */
import { type SchemaRegistry } from '@kafkajs/confluent-schema-registry'
import avsc from 'avsc'
import { avroTypeOptions } from '../serde/wire.ts'
import { SINK_LIMIT_DEFAULTS } from './config.ts'
import { verifyAudit } from '../security/audit-auth.ts'

export const CHUNK_EVENT_SCHEMA = 'dev.ragstream.v1.ChunkEvent'
export const AUDIT_EVENT_SCHEMA = 'dev.ragstream.v1.AuditEvent'

export interface RawChunkRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly key: Buffer | null
  readonly value: Buffer | null
}

/** One chunk row as the sink stores it (see the table in migrations.ts). */
export interface ChunkRow {
  readonly chunkId: string
  readonly entityType: string
  readonly entityKey: string
  readonly chunkIndex: number
  readonly content: string
  readonly contentHash: string
  /** pgvector text form `[x,y,...]`. */
  readonly embedding: string
  /** JSON object text. */
  readonly metadata: string
  readonly classification: string | null
  readonly tenant: string | null
  readonly region: string | null
  /** JSON array text. */
  readonly subjects: string
  readonly policyVersion: string | null
  readonly sourceTopic: string
  readonly sourcePartition: number
  readonly sourceOffset: string
  readonly sourcePosition: string | null
  readonly sourceTimestampMs: number
  /** When the change that made this version was appended to its source topic (epoch ms); null or absent when unknown. */
  readonly sourceAppendedAtMs?: number | null
  readonly topology: string
  readonly topologyVersion: string
  readonly chunker: string
  readonly embeddingModel: string
  readonly emittedAtMs: number
  readonly chunkTopic: string
  readonly chunkPartition: number
  readonly chunkOffset: bigint
}

export interface AuditRow {
  readonly eventId: string
  readonly kind: string
  readonly topology: string
  readonly topologyVersion: string | null
  readonly requestId: string | null
  readonly subjectHash: string | null
  readonly entityKeyHash: string | null
  readonly reason: string | null
  /** JSON object text. */
  readonly counts: string
  readonly atMs: number
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
}

export interface RejectRow {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly code: 'RS_DECODE_FAILED' | 'RS_RECORD_INVALID' | 'RS_EMBEDDING_DIMENSIONS' | 'RS_AUDIT_UNAUTHENTICATED'
  readonly message: string
  readonly key: string | null
  /** The chunk event's lineage (the source change it was derived from), when the record decoded that far. */
  readonly source?: { readonly topic: string; readonly partition: number; readonly offset: string }
}

export type SinkEvent =
  | { readonly kind: 'upsert'; readonly row: ChunkRow }
  | { readonly kind: 'tombstone'; readonly chunkId: string; readonly partition: number; readonly offset: bigint }
  | { readonly kind: 'audit'; readonly row: AuditRow }
  | { readonly kind: 'reject'; readonly row: RejectRow }

interface NamedType {
  readonly name?: string
  fromBuffer(buffer: Buffer): unknown
}

interface ChunkEventValue {
  chunk_id: string
  entity_type: string
  entity_key: string
  chunk_index: number
  text: string
  /** A Float32Array (see `readerOf`), or numbers when the writer's embedding is not `array<float>`. */
  embedding: Float32Array | number[]
  content_hash: string
  metadata: string
  classification: string | null
  tenant: string | null
  region: string | null
  subjects: string[]
  policy_version: string | null
  lineage: {
    source_topic: string
    source_partition: number
    source_offset: number | bigint
    source_timestamp_ms: number | bigint
    source_position: string | null
    topology: string
    topology_version: string
    chunker: string
    embedding_model: string
    emitted_at_ms: number | bigint
    change?: {
      topic: string
      partition: number
      offset: number | bigint
      timestamp_ms: number | bigint
      /** Absent when the writer schema predates it. */
      appended_at_ms?: number | bigint | null
    } | null
  }
}

/** A change's append time as the sink stores it: epoch ms, or null when absent or not a usable time. */
function appendedAtOf(change: ChunkEventValue['lineage']['change']): number | null {
  const at = change?.appended_at_ms
  if (at === undefined || at === null) return null
  const ms = Number(at)
  return Number.isSafeInteger(ms) && ms >= 0 ? ms : null
}

interface AuditEventValue {
  event_id: string
  kind: string
  topology: string
  topology_version: string | null
  request_id: string | null
  subject_hash: string | null
  entity_key_hash: string | null
  reason: string | null
  counts: Record<string, number | bigint>
  at_ms: number | bigint
  /** Absent when the writer schema predates it. */
  auth?: string | null
}

// PostgreSQL text and jsonb cannot hold U+0000; such a record is rejected, not altered.
const NUL = '\u0000'

function hasNul(values: readonly (string | null)[]): boolean {
  return values.some((v) => v !== null && v.includes(NUL))
}

/** jsonb refuses `\u0000` and lone surrogates (`"\ud800"`), which JSON.parse accepts: reject them here, not in the batch. */
function jsonbStorable(value: unknown): boolean {
  if (typeof value === 'string') return !value.includes(NUL) && value.isWellFormed()
  if (Array.isArray(value)) return value.every(jsonbStorable)
  if (value !== null && typeof value === 'object')
    return Object.entries(value).every(([k, v]) => jsonbStorable(k) && jsonbStorable(v))
  return true
}

/** At most `chars` characters of `text`, saying how long it was when cut. */
/** A chunk event's lineage as a reject row names it; none when its text cannot be stored (U+0000) or is oversized. */
function lineageOf(l: ChunkEventValue['lineage'] | undefined): RejectRow['source'] {
  if (l === undefined || l === null || typeof l.source_topic !== 'string' || l.source_topic === '') return undefined
  if (l.source_topic.includes(NUL) || Buffer.byteLength(l.source_topic) > 1024) return undefined
  return { topic: l.source_topic, partition: l.source_partition, offset: String(l.source_offset) }
}

export function excerpt(text: string, chars = 200): string {
  if (text.length <= chars) return text
  return `${text.slice(0, chars)}… (${Buffer.byteLength(text)} bytes)`
}

/**
 * The writer schema as the sink reads it: `array<float>` (the embedding) into a Float32Array, its
 * bytes copied at once instead of a float at a time into an Array (src/serde/wire.ts); every other
 * field as the registry client's type reads it. A type that is not avsc's is kept as it is.
 */
function readerOf(type: NamedType): NamedType {
  const schema = (type as { schema?: (options: { exportAttrs: boolean }) => unknown }).schema
  if (typeof schema !== 'function') return type
  return avsc.Type.forSchema(
    schema.call(type, { exportAttrs: true }) as avsc.Schema,
    avroTypeOptions({ float32Arrays: 'read-write' }) as unknown as Partial<avsc.ForSchemaOptions>,
  ) as unknown as NamedType
}

export class ChunkDecoder {
  readonly #registry: SchemaRegistry
  readonly #dims: number
  readonly #maxKeyBytes: number
  readonly #auditKey: Buffer | undefined
  readonly #types = new Map<number, NamedType | null>()

  /**
   * `auditKey` authenticates DELETION_APPLIED events (src/security/audit-auth.ts); without one, every
   * DELETION_APPLIED is refused.
   */
  constructor(
    registry: SchemaRegistry,
    dims: number,
    options: { readonly maxKeyBytes?: number; readonly auditKey?: Buffer } = {},
  ) {
    this.#registry = registry
    this.#dims = dims
    this.#maxKeyBytes = options.maxKeyBytes ?? SINK_LIMIT_DEFAULTS.maxKeyBytes
    this.#auditKey = options.auditKey
  }

  /** Fetches the writer schemas this batch needs (once per id: ids are immutable), so decode() does no I/O. */
  async prepare(records: readonly RawChunkRecord[]): Promise<void> {
    const missing = new Set<number>()
    for (const r of records) {
      if (r.value && r.value.length >= 5 && r.value[0] === 0) {
        const id = r.value.readUInt32BE(1)
        if (!this.#types.has(id)) missing.add(id)
      }
    }
    await Promise.all(
      [...missing].map(async (id) => {
        try {
          this.#types.set(id, readerOf((await this.#registry.getSchema(id)) as unknown as NamedType))
        } catch (error) {
          // A schema the registry does not know is a property of the record (reject it); an
          // unreachable registry is transient and must fail the fetch so it is retried.
          if ((error as { status?: number }).status === 404 || /not found/i.test(String((error as Error).message)))
            this.#types.set(id, null)
          else throw error
        }
      }),
    )
  }

  decode(record: RawChunkRecord): SinkEvent {
    const key = record.key === null ? null : record.key.toString('utf8')
    const reject = (code: RejectRow['code'], message: string, source?: RejectRow['source']): SinkEvent => ({
      kind: 'reject',
      row: {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        code,
        message,
        // A bounded excerpt: the record may be hostile (a 100 KB key), the reject row must stay writable.
        key: key !== null && !key.includes(NUL) ? excerpt(key) : null,
        ...(source !== undefined ? { source } : {}),
      },
    })
    if (key === null || key.length === 0) return reject('RS_RECORD_INVALID', 'record has no key (chunk id)')
    if (key.includes(NUL)) return reject('RS_RECORD_INVALID', 'record key contains U+0000')
    const keyBytes = record.key!.length
    if (keyBytes > this.#maxKeyBytes)
      return reject(
        'RS_RECORD_INVALID',
        `key (chunk id) is ${keyBytes} bytes, the sink indexes at most ${this.#maxKeyBytes} (/sink/maxKeyBytes)`,
      )
    if (record.value === null)
      return { kind: 'tombstone', chunkId: key, partition: record.partition, offset: record.offset }
    const value = record.value
    if (value.length < 5 || value[0] !== 0)
      return reject('RS_DECODE_FAILED', `value is not in the Confluent wire format (${value.length} bytes)`)
    const id = value.readUInt32BE(1)
    const type = this.#types.get(id)
    if (!type) return reject('RS_DECODE_FAILED', `schema id ${id} is unknown to the schema registry`)
    let decoded: unknown
    try {
      decoded = type.fromBuffer(value.subarray(5))
    } catch (error) {
      return reject('RS_DECODE_FAILED', `Avro decode failed under schema id ${id}: ${(error as Error).message}`)
    }
    if (type.name === AUDIT_EVENT_SCHEMA) return this.#audit(record, decoded as AuditEventValue, reject)
    if (type.name !== CHUNK_EVENT_SCHEMA)
      return reject('RS_DECODE_FAILED', `schema id ${id} is ${type.name ?? 'unnamed'}, not ${CHUNK_EVENT_SCHEMA}`)
    const e = decoded as ChunkEventValue
    // From here on a reject names the change the chunk was derived from.
    const lineage = lineageOf(e.lineage)
    const rejectChunk = (code: RejectRow['code'], message: string): SinkEvent => reject(code, message, lineage)
    if (e.chunk_id !== key)
      return rejectChunk(
        'RS_RECORD_INVALID',
        `key ${JSON.stringify(excerpt(key))} differs from chunk_id ${JSON.stringify(excerpt(e.chunk_id))}`,
      )
    const entityBytes = Buffer.byteLength(e.entity_type) + Buffer.byteLength(e.entity_key)
    if (entityBytes > this.#maxKeyBytes)
      return rejectChunk(
        'RS_RECORD_INVALID',
        `entity type + key are ${entityBytes} bytes, the sink indexes at most ${this.#maxKeyBytes} (/sink/maxKeyBytes)`,
      )
    if (e.embedding.length !== this.#dims)
      return rejectChunk(
        'RS_EMBEDDING_DIMENSIONS',
        `embedding has ${e.embedding.length} dimensions, the table has ${this.#dims}`,
      )
    const embedding = e.embedding
    for (let i = 0; i < embedding.length; i++)
      if (!Number.isFinite(embedding[i])) return rejectChunk('RS_RECORD_INVALID', 'embedding contains NaN or infinity')
    let metadata: unknown
    try {
      metadata = JSON.parse(e.metadata)
    } catch {
      return rejectChunk('RS_RECORD_INVALID', 'metadata is not valid JSON')
    }
    if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata))
      return rejectChunk('RS_RECORD_INVALID', 'metadata is not a JSON object')
    if (!jsonbStorable(metadata))
      return rejectChunk('RS_RECORD_INVALID', 'metadata contains \\u0000 or a lone surrogate, which jsonb cannot store')
    const l = e.lineage
    if (
      hasNul([
        e.entity_type,
        e.entity_key,
        e.text,
        e.content_hash,
        e.metadata,
        e.classification,
        e.tenant,
        e.region,
        e.policy_version,
        ...e.subjects,
        l.source_topic,
        l.source_position,
        l.topology,
        l.topology_version,
        l.chunker,
        l.embedding_model,
      ])
    ) {
      return rejectChunk('RS_RECORD_INVALID', 'a text field contains U+0000, which PostgreSQL cannot store')
    }
    return {
      kind: 'upsert',
      row: {
        chunkId: key,
        entityType: e.entity_type,
        entityKey: e.entity_key,
        chunkIndex: e.chunk_index,
        content: e.text,
        contentHash: e.content_hash,
        // A Float32Array's elements are the floats avsc would read one by one: the same text.
        embedding: `[${embedding.join(',')}]`,
        metadata: e.metadata,
        classification: e.classification,
        tenant: e.tenant,
        region: e.region,
        subjects: JSON.stringify(e.subjects),
        policyVersion: e.policy_version,
        sourceTopic: l.source_topic,
        sourcePartition: l.source_partition,
        sourceOffset: String(l.source_offset),
        sourcePosition: l.source_position,
        // Freshness is measured from the change that made this version (a re-triggering join's right row), not the entity's own last change.
        sourceTimestampMs: Number(l.change?.timestamp_ms ?? l.source_timestamp_ms),
        // ...and split at its append to the source topic: capture before, ragstream after.
        sourceAppendedAtMs: appendedAtOf(l.change),
        topology: l.topology,
        topologyVersion: l.topology_version,
        chunker: l.chunker,
        embeddingModel: l.embedding_model,
        emittedAtMs: Number(l.emitted_at_ms),
        chunkTopic: record.topic,
        chunkPartition: record.partition,
        chunkOffset: record.offset,
      },
    }
  }

  #audit(
    record: RawChunkRecord,
    e: AuditEventValue,
    reject: (code: RejectRow['code'], message: string) => SinkEvent,
  ): SinkEvent {
    const counts: Record<string, number> = {}
    for (const [k, v] of Object.entries(e.counts)) counts[k] = Number(v)
    const countsJson = JSON.stringify(counts)
    if (
      hasNul([
        e.event_id,
        e.kind,
        e.topology,
        e.topology_version,
        e.request_id,
        e.subject_hash,
        e.entity_key_hash,
        e.reason,
        countsJson,
      ])
    ) {
      return reject('RS_RECORD_INVALID', 'an audit field contains U+0000')
    }
    // It deletes rows: only the processor (holding the audit key) may emit one.
    if (e.kind === 'DELETION_APPLIED' && (this.#auditKey === undefined || !verifyAudit(e, e.auth, this.#auditKey)))
      return reject(
        'RS_AUDIT_UNAUTHENTICATED',
        `DELETION_APPLIED ${JSON.stringify(excerpt(e.event_id, 80))} (request ${JSON.stringify(excerpt(e.request_id ?? '', 80))}) is ${e.auth ? 'signed with another key' : 'not signed'}: refused, nothing deleted`,
      )
    return {
      kind: 'audit',
      row: {
        eventId: e.event_id,
        kind: e.kind,
        topology: e.topology,
        topologyVersion: e.topology_version,
        requestId: e.request_id,
        subjectHash: e.subject_hash,
        entityKeyHash: e.entity_key_hash,
        reason: e.reason,
        counts: countsJson,
        atMs: Number(e.at_ms),
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
      },
    }
  }
}
