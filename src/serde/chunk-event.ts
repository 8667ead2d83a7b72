/**
 * The chunk event: the value of every record on `rag.chunks.<topology>[.<version>]`, the contract
 * between the processor and the sink. Its Avro schema is schemas/chunk-event.avsc (subject
 * `<topic>-value`); field names here are the schema's, so no mapping layer sits on the hot path.
 * Key = chunk id (UTF-8), partition = hash of the entity key, value = this record or null (tombstone).
 */
import { readFileSync } from 'node:fs'
import { packageFile } from '../package-files.ts'

export interface ChunkLineage {
  readonly source_topic: string
  readonly source_partition: number
  /** Kafka offset; a JS number (exact up to 2^53). */
  readonly source_offset: number
  readonly source_timestamp_ms: number
  readonly source_position: string | null
  readonly source_table: string | null
  readonly topology: string
  readonly topology_version: string
  readonly chunker: string
  readonly embedding_model: string
  readonly emitted_at_ms: number
  /**
   * The change that made this version (design point 10): the entity's own record above, or the joined
   * row's change that re-triggered it. Null in events written before the field existed.
   */
  readonly change?: ChunkChange | null
}

/** A change's source record, when it happened at its source (its event time) and when it reached its source topic. */
export interface ChunkChange {
  readonly topic: string
  readonly partition: number
  /** Kafka offset; a JS number (exact up to 2^53). */
  readonly offset: number
  readonly timestamp_ms: number
  /**
   * When the same change was appended to its source topic (its source record's Kafka timestamp):
   * `timestamp_ms` → here is capture, here → visible in Postgres is ragstream's part. Null when
   * unknown; absent in events written before the field existed.
   */
  readonly appended_at_ms?: number | null
}

export interface ChunkEvent {
  readonly chunk_id: string
  readonly entity_type: string
  readonly entity_key: string
  readonly chunk_index: number
  readonly text: string
  /** Float32Array or number[]; decoded events carry number[]. */
  readonly embedding: ArrayLike<number>
  readonly content_hash: string
  /** JSON object text. */
  readonly metadata: string
  readonly classification: string | null
  readonly tenant: string | null
  readonly region: string | null
  readonly subjects: readonly string[]
  readonly policy_version: string | null
  readonly lineage: ChunkLineage
}

/** schemas/chunk-event.avsc, parsed. */
export const CHUNK_EVENT_SCHEMA: Readonly<Record<string, unknown>> = JSON.parse(
  readFileSync(packageFile('schemas/chunk-event.avsc'), 'utf8'),
) as Record<string, unknown>

/** The value subject of a topic (Confluent TopicNameStrategy). */
export const valueSubject = (topic: string): string => `${topic}-value`
