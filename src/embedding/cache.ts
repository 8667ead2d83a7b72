/**
 * The embedding cache: (model, content hash) → vector, in Redis, so unchanged text is never
 * embedded twice — not on a re-sent row, not on a replay from earliest, not by another worker.
 *
 *   key    rs:emb:{<model>@<dimensions>}:<sha256 hex of the chunk text>
 *   value  the vector as raw little-endian float32 bytes (4 × dimensions)
 *   index  rs:emb:{<model>@<dimensions>}:lru   sorted set: content hash → last use (ms), when bounded
 *
 * One round trip per batch each way: MGET for the lookup, one pipeline of SETs for the store. The
 * hash tag is the model, so every key of a model lives in one Redis Cluster slot and MGET works on a
 * cluster too (trade-off: one model's cache lives on one shard). Vectors are keyed by content hash
 * only, never by entity, so the cache holds no entity ids; forgetting a subject deletes the hashes
 * of its chunks (`delete`).
 *
 * **The bound.** Every edit of a document makes new chunk texts, and the vectors of the old ones
 * stay useful only to a replay of old data; unbounded, the cache grows with every chunk version
 * forever (963 MB at 160k tickets, issue 19). Two limits, each optional, per model:
 *   - `maxEntries`: least recently used entries are evicted once a model holds more. "Use" is a
 *     lookup hit or a store; the index is a sorted set in the model's slot, and a Lua script per
 *     batch reads or writes vectors, touches the index and evicts, atomically, in the same one round
 *     trip as the unbounded cache.
 *   - `ttlSeconds`: an entry not used for that long expires (a hit renews it).
 * An evicted or expired vector is simply embedded again when its text comes back: a cost, never a
 * wrong answer. Entries of forgotten subjects are deleted from both the vectors and the index.
 */
import type { Cluster, Redis } from 'ioredis'
import { ConfigError, ServiceUnavailableError, type Problem } from '../errors.ts'

export interface EmbeddingCache {
  /** One vector or undefined per hash, in order. A hit counts as a use (LRU, sliding TTL). */
  getMany(namespace: string, hashes: readonly string[], dimensions: number): Promise<(Float32Array | undefined)[]>
  /** Stores vectors; returns how many older entries the bound evicted to make room (0 when unbounded). */
  setMany(namespace: string, entries: readonly (readonly [hash: string, vector: Float32Array])[]): Promise<number>
  delete(namespace: string, hashes: readonly string[]): Promise<number>
}

/** How large the cache may grow, per model; both optional (unset = unbounded). */
export interface EmbeddingCacheBound {
  /** At most this many vectors per model; the least recently used go first. */
  readonly maxEntries?: number
  /** Entries unused for this long expire; a hit renews the time. */
  readonly ttlSeconds?: number
}

export interface RedisEmbeddingCacheOptions extends EmbeddingCacheBound {
  /** Key prefix; default `rs:emb`. Tests use a fresh one. */
  readonly prefix?: string
  /** Names Redis in errors; default "Redis". */
  readonly address?: string
}

/** Hashes per script call: Lua's unpack and one reply stay small; a batch's calls share one pipeline. */
const SCRIPT_SLICE = 1000

// KEYS[1] = index, KEYS[2..] = vector keys; ARGV = now (ms), ttl (s, 0 = none), hashes…
const GET_AND_TOUCH = `
local values = redis.call('MGET', unpack(KEYS, 2))
local now, ttl = ARGV[1], tonumber(ARGV[2])
for i = 1, #values do
  if values[i] then
    redis.call('ZADD', KEYS[1], now, ARGV[i + 2])
    if ttl > 0 then redis.call('EXPIRE', KEYS[i + 1], ttl) end
  end
end
return values`

// KEYS[1] = index, KEYS[2..] = vector keys; ARGV = now, ttl, maxEntries (0 = none), key prefix,
// n, hashes[1..n], vectors[1..n]. Returns the number of entries evicted.
const SET_AND_EVICT = `
local now, ttl, max, prefix, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
for i = 1, n do
  if ttl > 0 then redis.call('SET', KEYS[i + 1], ARGV[5 + n + i], 'EX', ttl)
  else redis.call('SET', KEYS[i + 1], ARGV[5 + n + i]) end
  redis.call('ZADD', KEYS[1], now, ARGV[5 + i])
end
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
local evicted = 0
if max > 0 then
  local excess = redis.call('ZCARD', KEYS[1]) - max
  if excess > 0 then
    local old = redis.call('ZPOPMIN', KEYS[1], excess)
    for i = 1, #old, 2 do evicted = evicted + redis.call('DEL', prefix .. old[i]) end
  end
end
return evicted`

/** A pipeline with the two scripts (ioredis `defineCommand` adds them, and a `…Buffer` variant of each). */
interface ScriptPipeline {
  ragstreamEmbGetBuffer(numberOfKeys: number, ...keysThenArgs: (string | number)[]): unknown
  ragstreamEmbSet(numberOfKeys: number, ...keysThenArgs: (string | number | Buffer)[]): unknown
}

export class RedisEmbeddingCache implements EmbeddingCache {
  readonly #redis: Redis | Cluster
  readonly #prefix: string
  readonly #ttl: number | undefined
  readonly #maxEntries: number | undefined
  readonly #address: string

  constructor(redis: Redis | Cluster, options: RedisEmbeddingCacheOptions = {}) {
    this.#redis = redis
    this.#prefix = options.prefix ?? 'rs:emb'
    this.#ttl = options.ttlSeconds
    this.#maxEntries = options.maxEntries
    this.#address = options.address ?? 'the configured Redis'
    if (this.#bounded && !('ragstreamEmbGet' in redis)) {
      redis.defineCommand('ragstreamEmbGet', { lua: GET_AND_TOUCH })
      redis.defineCommand('ragstreamEmbSet', { lua: SET_AND_EVICT })
    }
  }

  get #bounded(): boolean {
    return this.#maxEntries !== undefined || this.#ttl !== undefined
  }

  #base(namespace: string): string {
    return `${this.#prefix}:{${namespace.replace(/[{}]/g, '_')}}:`
  }

  #unavailable = (error: unknown): never => {
    throw new ServiceUnavailableError('Redis (embedding cache)', this.#address, error)
  }

  async getMany(
    namespace: string,
    hashes: readonly string[],
    dimensions: number,
  ): Promise<(Float32Array | undefined)[]> {
    if (hashes.length === 0) return []
    const base = this.#base(namespace)
    let values: (Buffer | null)[]
    if (!this.#bounded) {
      values = await this.#redis.mgetBuffer(...hashes.map((h) => base + h)).catch(this.#unavailable)
    } else {
      const pipeline = this.#redis.pipeline()
      const now = Date.now()
      for (let at = 0; at < hashes.length; at += SCRIPT_SLICE) {
        const slice = hashes.slice(at, at + SCRIPT_SLICE)
        // numberOfKeys first, then the keys, then ARGV; the Buffer variant keeps vectors binary.
        ;(pipeline as unknown as ScriptPipeline).ragstreamEmbGetBuffer(
          slice.length + 1,
          `${base}lru`,
          ...slice.map((h) => base + h),
          now,
          this.#ttl ?? 0,
          ...slice,
        )
      }
      const results = await pipeline.exec().catch(this.#unavailable)
      const failed = results?.find(([error]) => error !== null)
      if (failed) this.#unavailable(failed[0])
      values = (results ?? []).flatMap(([, value]) => value as (Buffer | null)[])
    }
    return values.map((value) => {
      // A value of the wrong size (another dimension setting under a colliding name) is a miss.
      if (value === null || value.length !== dimensions * 4) return undefined
      return new Float32Array(new Uint8Array(value).buffer)
    })
  }

  async setMany(namespace: string, entries: readonly (readonly [string, Float32Array])[]): Promise<number> {
    if (entries.length === 0) return 0
    const base = this.#base(namespace)
    const bytes = (vector: Float32Array): Buffer => Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength)
    const pipeline = this.#redis.pipeline()
    if (!this.#bounded) for (const [hash, vector] of entries) pipeline.set(base + hash, bytes(vector))
    else {
      const now = Date.now()
      for (let at = 0; at < entries.length; at += SCRIPT_SLICE) {
        const slice = entries.slice(at, at + SCRIPT_SLICE)
        ;(pipeline as unknown as ScriptPipeline).ragstreamEmbSet(
          slice.length + 1,
          `${base}lru`,
          ...slice.map(([hash]) => base + hash),
          now,
          this.#ttl ?? 0,
          this.#maxEntries ?? 0,
          base,
          slice.length,
          ...slice.map(([hash]) => hash),
          ...slice.map(([, vector]) => bytes(vector)),
        )
      }
    }
    const results = await pipeline.exec().catch(this.#unavailable)
    const failed = results?.find(([error]) => error !== null)
    if (failed) this.#unavailable(failed[0])
    return this.#bounded ? (results ?? []).reduce((sum, [, evicted]) => sum + Number(evicted), 0) : 0
  }

  async delete(namespace: string, hashes: readonly string[]): Promise<number> {
    if (hashes.length === 0) return 0
    const base = this.#base(namespace)
    if (!this.#bounded) return this.#redis.del(...hashes.map((h) => base + h)).catch(this.#unavailable)
    const results = await this.#redis
      .pipeline()
      .del(...hashes.map((h) => base + h))
      .zrem(`${base}lru`, ...hashes)
      .exec()
      .catch(this.#unavailable)
    const failed = results?.find(([error]) => error !== null)
    if (failed) this.#unavailable(failed[0])
    return Number(results?.[0]?.[1] ?? 0)
  }
}

/**
 * The default bound: a million vectors per model (about 1.7 GB of Redis at 384 dimensions: 1.5 KB of
 * vector, ~0.1 KB of key and ~0.1 KB of index per entry), no TTL.
 */
export const DEFAULT_EMBEDDING_CACHE_MAX_ENTRIES = 1_000_000

/**
 * The bound from the environment (a config file's `/embedding/cache/*` reaches commands as these
 * variables): RAGSTREAM_EMBEDDING_CACHE_MAX_ENTRIES (default 1 000 000) and
 * RAGSTREAM_EMBEDDING_CACHE_TTL_SECONDS (default none), each a non-negative integer, `0` for no
 * limit. Invalid values throw one ConfigError naming each.
 */
export function embeddingCacheBoundFromEnv(env: NodeJS.ProcessEnv = process.env): EmbeddingCacheBound {
  const problems: Problem[] = []
  const read = (name: string, path: string, fallback = 0): number | undefined => {
    const raw = env[name]?.trim() || String(fallback)
    const n = Number(raw)
    if (!Number.isSafeInteger(n) || n < 0) {
      problems.push({ path: `${path} (${name})`, message: 'expected an integer ≥ 0 (0 = no limit)' })
      return undefined
    }
    return n === 0 ? undefined : n
  }
  const maxEntries = read(
    'RAGSTREAM_EMBEDDING_CACHE_MAX_ENTRIES',
    '/embedding/cache/maxEntries',
    DEFAULT_EMBEDDING_CACHE_MAX_ENTRIES,
  )
  const ttlSeconds = read('RAGSTREAM_EMBEDDING_CACHE_TTL_SECONDS', '/embedding/cache/ttlSeconds')
  if (problems.length > 0) throw new ConfigError(problems, 'embedding cache configuration')
  return { ...(maxEntries ? { maxEntries } : {}), ...(ttlSeconds ? { ttlSeconds } : {}) }
}
