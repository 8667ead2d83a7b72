/**
 * The embedding cache: (model, content hash) → vector, in Redis, so unchanged text is never
 * embedded twice — not on a re-sent row, not on a replay from earliest, not by another worker.
 *
 *   key    rs:emb:{<model>@<dimensions>}:<sha256 hex of the chunk text>
 *   value  the vector as raw little-endian float32 bytes (4 × dimensions)
 *
 * One round trip per batch each way: MGET for the lookup, one pipeline of SETs for the store. The
 * hash tag is the model, so every key of a model lives in one Redis Cluster slot and MGET works on a
 * cluster too (trade-off: one model's cache lives on one shard). Vectors are keyed by content hash
 * only, never by entity, so the cache holds no entity ids; forgetting a subject deletes the hashes
 * of its chunks (`delete`).
 */
import type { Cluster, Redis } from 'ioredis'
import { ServiceUnavailableError } from '../errors.ts'

export interface EmbeddingCache {
  /** One vector or undefined per hash, in order. */
  getMany(namespace: string, hashes: readonly string[], dimensions: number): Promise<(Float32Array | undefined)[]>
  setMany(namespace: string, entries: readonly (readonly [hash: string, vector: Float32Array])[]): Promise<void>
  delete(namespace: string, hashes: readonly string[]): Promise<number>
}

export interface RedisEmbeddingCacheOptions {
  /** Key prefix; default `rs:emb`. Tests use a fresh one. */
  readonly prefix?: string
  /** Expire entries after this many seconds; default never (a replay after expiry re-embeds, still correct). */
  readonly ttlSeconds?: number
  /** Names Redis in errors; default "Redis". */
  readonly address?: string
}

export class RedisEmbeddingCache implements EmbeddingCache {
  readonly #redis: Redis | Cluster
  readonly #prefix: string
  readonly #ttl: number | undefined
  readonly #address: string

  constructor(redis: Redis | Cluster, options: RedisEmbeddingCacheOptions = {}) {
    this.#redis = redis
    this.#prefix = options.prefix ?? 'rs:emb'
    this.#ttl = options.ttlSeconds
    this.#address = options.address ?? 'the configured Redis'
  }

  #key(namespace: string, hash: string): string {
    return `${this.#prefix}:{${namespace.replace(/[{}]/g, '_')}}:${hash}`
  }

  async getMany(
    namespace: string,
    hashes: readonly string[],
    dimensions: number,
  ): Promise<(Float32Array | undefined)[]> {
    if (hashes.length === 0) return []
    const values = await this.#redis
      .mgetBuffer(...hashes.map((h) => this.#key(namespace, h)))
      .catch((error: unknown) => {
        throw new ServiceUnavailableError('Redis (embedding cache)', this.#address, error)
      })
    return values.map((value) => {
      // A value of the wrong size (another dimension setting under a colliding name) is a miss.
      if (value === null || value.length !== dimensions * 4) return undefined
      return new Float32Array(new Uint8Array(value).buffer)
    })
  }

  async setMany(namespace: string, entries: readonly (readonly [string, Float32Array])[]): Promise<void> {
    if (entries.length === 0) return
    const pipeline = this.#redis.pipeline()
    for (const [hash, vector] of entries) {
      const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength)
      if (this.#ttl === undefined) pipeline.set(this.#key(namespace, hash), bytes)
      else pipeline.set(this.#key(namespace, hash), bytes, 'EX', this.#ttl)
    }
    const results = await pipeline.exec().catch((error: unknown) => {
      throw new ServiceUnavailableError('Redis (embedding cache)', this.#address, error)
    })
    const failed = results?.find(([error]) => error !== null)
    if (failed) throw new ServiceUnavailableError('Redis (embedding cache)', this.#address, failed[0])
  }

  async delete(namespace: string, hashes: readonly string[]): Promise<number> {
    if (hashes.length === 0) return 0
    return this.#redis.del(...hashes.map((h) => this.#key(namespace, h))).catch((error: unknown) => {
      throw new ServiceUnavailableError('Redis (embedding cache)', this.#address, error)
    })
  }
}
