/**
 * The embedding cache in process memory: the test driver's default, so a unit test of a RAG topology
 * needs no Redis. Same contract as the Redis cache (vectors by namespace and content hash, `delete`
 * for forgetting); unbounded unless `maxEntries` is set (least recently used go first).
 */
import type { EmbeddingCache } from './cache.ts'

export class MemoryEmbeddingCache implements EmbeddingCache {
  /** namespace → content hash → vector, in least-recently-used-first order. */
  readonly #entries = new Map<string, Map<string, Float32Array>>()
  readonly #maxEntries: number | undefined

  constructor(options: { readonly maxEntries?: number } = {}) {
    this.#maxEntries = options.maxEntries
  }

  #namespace(namespace: string): Map<string, Float32Array> {
    let entries = this.#entries.get(namespace)
    if (entries === undefined) this.#entries.set(namespace, (entries = new Map()))
    return entries
  }

  async getMany(
    namespace: string,
    hashes: readonly string[],
    dimensions: number,
  ): Promise<(Float32Array | undefined)[]> {
    const entries = this.#namespace(namespace)
    return hashes.map((hash) => {
      const vector = entries.get(hash)
      if (vector === undefined || vector.length !== dimensions) return undefined
      entries.delete(hash) // a hit is a use: move to the most recent end
      entries.set(hash, vector)
      return Float32Array.from(vector)
    })
  }

  async setMany(namespace: string, items: readonly (readonly [hash: string, vector: Float32Array])[]): Promise<number> {
    const entries = this.#namespace(namespace)
    for (const [hash, vector] of items) {
      entries.delete(hash)
      entries.set(hash, Float32Array.from(vector))
    }
    let evicted = 0
    if (this.#maxEntries !== undefined)
      for (const hash of entries.keys()) {
        if (entries.size <= this.#maxEntries) break
        entries.delete(hash)
        evicted++
      }
    return evicted
  }

  async delete(namespace: string, hashes: readonly string[]): Promise<number> {
    const entries = this.#namespace(namespace)
    let removed = 0
    for (const hash of hashes) if (entries.delete(hash)) removed++
    return removed
  }

  /** Content hashes cached for a namespace (for tests: what forgetting left). */
  hashes(namespace: string): string[] {
    return [...(this.#entries.get(namespace)?.keys() ?? [])]
  }
}
