/**
 * Codecs for chunk events: Avro in the Confluent wire format (the default, through the registry)
 * and a JSON fallback (for platforms without a registry, and for humans reading a topic).
 *
 * JSON record shape: the Avro field names, one object per event, the embedding as a number array,
 * longs as JSON numbers; a tombstone is a null value (not the text "null").
 */
import { AvroValueCodec, type Compatibility } from './avro-codec.ts'
import { CHUNK_EVENT_SCHEMA, type ChunkEvent } from './chunk-event.ts'
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry'

export interface ChunkEventCodec {
  encode(event: ChunkEvent | null): Buffer | null
  /** Resolves what decode needs for these buffers (writer schemas); no-op for JSON. */
  prepare(buffers: Iterable<Buffer | null>): Promise<void>
  decode(buffer: Buffer | null): ChunkEvent | null
}

/** JSON writes a Float32Array as an object: embeddings are copied into an Array here (a plain loop: Array.from is ~15× slower). */
function toJson(event: ChunkEvent): unknown {
  const source = event.embedding
  if (Array.isArray(source)) return event
  const embedding: number[] = new Array(source.length)
  for (let i = 0; i < source.length; i++) embedding[i] = source[i]
  return { ...event, embedding }
}

export function chunkEventAvroCodec(options: {
  registryUrl: string
  topic: string
  compatibility?: Compatibility
  registry?: SchemaRegistry
}): Promise<AvroValueCodec<ChunkEvent>> {
  // The embedding goes in as it is (a Float32Array is written as one copy of its bytes).
  return AvroValueCodec.forTopic<ChunkEvent>({ ...options, schema: CHUNK_EVENT_SCHEMA, float32Arrays: true })
}

export const chunkEventJsonCodec: ChunkEventCodec = {
  encode(event) {
    return event === null ? null : Buffer.from(JSON.stringify(toJson(event)))
  },
  async prepare() {},
  decode(buffer) {
    return buffer === null ? null : (JSON.parse(buffer.toString('utf8')) as ChunkEvent)
  },
}
