/**
 * The `hashing` embedder: the feature-hashing trick over words and word pairs, signed, L2-normalised.
 * Built in, deterministic (same text, same vector, on every machine, for as long as the model id
 * says `hashing:v1`), offline and free — so the demo, the tests and CI need no paid service.
 *
 * Be honest about what it is: a *lexical* embedding. Cosine similarity between two hashing vectors
 * measures shared words and word pairs (like a hashed bag-of-words / TF vector), not meaning:
 * "refund" and "money back" are unrelated to it. Use it for pipelines, tests and keyword-ish
 * retrieval; use a real model (the `openai` provider against OpenAI, vLLM, TEI or Ollama) for
 * semantic search.
 */
import type { EmbeddingProvider, EmbeddingResult } from './provider.ts'

export interface HashingEmbeddingConfig {
  readonly kind: 'hashing'
  /** Vector size; default 384. */
  readonly dimensions?: number
}

export const HASHING_DEFAULT_DIMENSIONS = 384
const WORD = /[\p{L}\p{N}]+/gu
const BIGRAM_WEIGHT = 0.5

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** Continues an FNV-1a (32-bit) hash over `text`. */
function fnv1a(h: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, FNV_PRIME)
  }
  return h
}

function add(vector: Float32Array, hash: number, weight: number): void {
  const h = hash >>> 0
  // Low bit chooses the sign, so collisions cancel out on average instead of piling up.
  vector[(h >>> 1) % vector.length] += h & 1 ? weight : -weight
}

const SPACE = 32

/**
 * The hashing embedding of one text: features are lower-cased words (weight 1) and adjacent word
 * pairs "a b" (weight 0.5), each FNV-1a-hashed to a signed bucket. Empty or word-less text maps to
 * the first unit vector (never a zero vector, which cosine distance cannot handle).
 */
export function hashingEmbed(text: string, dimensions: number): Float32Array {
  const vector = new Float32Array(dimensions)
  // FNV state after "<previous word> ", so the pair hash continues from it without building strings.
  let pairPrefix: number | undefined
  for (const match of text.toLowerCase().matchAll(WORD)) {
    const word = match[0]
    const h = fnv1a(FNV_OFFSET, word)
    add(vector, h, 1)
    if (pairPrefix !== undefined) add(vector, fnv1a(pairPrefix, word), BIGRAM_WEIGHT)
    pairPrefix = Math.imul(h ^ SPACE, FNV_PRIME)
  }
  let norm = 0
  for (let i = 0; i < dimensions; i++) norm += vector[i] * vector[i]
  if (norm === 0) {
    vector[0] = 1
    return vector
  }
  const scale = 1 / Math.sqrt(norm)
  for (let i = 0; i < dimensions; i++) vector[i] *= scale
  return vector
}

export class HashingProvider implements EmbeddingProvider {
  readonly model = 'hashing:v1'
  readonly dimensions: number
  readonly maxBatchItems = 1024
  readonly maxBatchTokens = Number.MAX_SAFE_INTEGER
  readonly maxConcurrency = 1

  constructor(config: HashingEmbeddingConfig = { kind: 'hashing' }) {
    this.dimensions = config.dimensions ?? HASHING_DEFAULT_DIMENSIONS
  }

  async embedBatch(texts: readonly string[]): Promise<EmbeddingResult> {
    return { vectors: texts.map((t) => hashingEmbed(t, this.dimensions)) }
  }
}
