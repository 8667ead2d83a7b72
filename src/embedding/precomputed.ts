/**
 * Bring your own vectors: the embedding is already in a field of the row (computed upstream). The
 * field may hold a JSON/Avro array of numbers, a pgvector literal `"[0.1,0.2]"`, or raw little-endian
 * float32 bytes. A missing or malformed vector is the record's fault: RS_RECORD_INVALID, dead-lettered.
 */
import { RagstreamError, type ErrorContext } from '../errors.ts'

export interface PrecomputedEmbeddingConfig {
  readonly kind: 'precomputed'
  /** Row field (dot path allowed) holding the vector. */
  readonly field: string
  readonly dimensions: number
  /** What produced the vectors, for lineage; default `precomputed:<field>`. */
  readonly model?: string
}

export function vectorFromField(
  row: Readonly<Record<string, unknown>>,
  config: PrecomputedEmbeddingConfig,
  context: ErrorContext = {},
): Float32Array {
  let value: unknown = row
  for (const name of config.field.split('.'))
    value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[name] : undefined
  const fail = (what: string) =>
    new RagstreamError('RS_RECORD_INVALID', `precomputed embedding field "${config.field}" ${what}`, {
      context: { ...context, field: config.field },
    })
  let vector: Float32Array
  if (Array.isArray(value)) {
    const bad = value.findIndex((x) => typeof x !== 'number')
    if (bad >= 0) throw fail(`has a non-finite value at index ${bad}`)
    vector = Float32Array.from(value as number[])
  } else if (value instanceof Float32Array || value instanceof Float64Array) vector = Float32Array.from(value)
  else if (Buffer.isBuffer(value)) {
    if (value.length % 4 !== 0) throw fail(`holds ${value.length} bytes, not a whole number of float32 values`)
    vector = new Float32Array(new Uint8Array(value).buffer)
  } else if (typeof value === 'string' && /^\s*\[.*\]\s*$/s.test(value)) {
    try {
      vector = Float32Array.from(JSON.parse(value) as number[])
    } catch {
      throw fail('is not a valid vector literal')
    }
  } else throw fail(value === undefined || value === null ? 'is missing' : `is not a vector (got ${typeof value})`)
  if (vector.length !== config.dimensions)
    throw fail(`has ${vector.length} dimensions, the topology expects ${config.dimensions}`)
  for (let i = 0; i < vector.length; i++)
    if (!Number.isFinite(vector[i])) throw fail(`has a non-finite value at index ${i}`)
  return vector
}
