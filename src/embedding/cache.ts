/**
 * The embedding cache: (model, content hash) → vector, in Redis, so unchanged text is never
 * embedded twice — not on a re-sent row, not on a replay from earliest, not by another worker.
 *
 *   key    rs:emb:{<model>@<dimensions>}:<sha256 hex of the chunk text>
 *   value  the vector as raw little-endian float32 bytes (4 × dimensions)
 *   index  rs:emb:{<model>@<dimensions>}:lru   sorted set: content hash → last use (ms), when bounded
 *
 * The hash tag is the model, so every key of a model lives in one Redis Cluster slot and one
 * pipeline (MGET, MSET, the scripts) works on a cluster too (trade-off: one model's cache lives on
 * one shard). Vectors are keyed by content hash only, never by entity, so the cache holds no entity
 * ids; forgetting a subject deletes the hashes of its chunks (`delete`).
 *
 * **One round trip per batch: stores are written behind.** The processor's CPU per change is mostly
 * its round trips (issue 18, docs/operations.md), so the store has none of its own in the steady
 * state. `setMany` only queues the new vectors; the queue of a model rides that model's next lookup
 * (one pipeline: the queued vectors' MSET or store script first, then the MGET or lookup script),
 * and a timer (`writeDelayMs`, default 1 s from the oldest vector waiting, unref'd) writes what no
 * lookup took. The guarantees around the queue:
 *   - a lookup in this process serves a queued (or sent, unacknowledged) vector from memory: a
 *     vector is never embedded twice because it was not written yet;
 *   - `delete` drops the queued vectors of its hashes (and keeps a failed write from queueing them
 *     again), and waits for every write already sent before its DEL: forgetting is never undone;
 *   - a failed write never fails a lookup or a batch (the cache is a cache: a lost vector costs a
 *     re-embed, never a wrong answer): its vectors are queued again for the next round trip or timer,
 *     and it is reported (`embedding-cache-write-failure` → ragstream_embedding_cache_write_failures_total).
 *     The queue is bounded (`maxQueued`, default 10,000 vectors; oldest dropped first, counted in
 *     ragstream_embedding_cache_dropped_total), so a Redis that refuses writes cannot grow it forever.
 *     A lookup whose own read fails still throws RS_SERVICE_UNAVAILABLE (the batch retries);
 *   - `flush()` writes what is queued (and throws if it cannot); `close()` flushes within a time
 *     limit and drops (counts) what it could not write. Whoever closes the services calls it
 *     (`RagServices.close`); a process that exits without closing loses at most the last second of
 *     stores, which the next sight of those texts embeds again.
 * Another process sees a vector once it was written (a lookup or the timer after it was embedded):
 * two workers embedding the same new text within that second both embed it, as two workers
 * embedding it at the same moment always did.
 *
 * **The bound.** Every edit of a document makes new chunk texts, and the vectors of the old ones
 * stay useful only to a replay of old data; unbounded, the cache grows with every chunk version
 * forever (963 MB at 160k tickets, issue 19). Two limits, each optional, per model:
 *   - `maxEntries`: least recently used entries are evicted once a model holds more. "Use" is a
 *     lookup hit or a store; the index is a sorted set in the model's slot, and Lua scripts read or
 *     write vectors, touch the index and evict, atomically, in the same one round trip as the
 *     unbounded cache. Evictions are reported (`embedding-cache-evictions`) when the store script
 *     runs, to the telemetry scope the vectors were queued in.
 *   - `ttlSeconds`: an entry not used for that long expires (a hit renews it).
 * An evicted or expired vector is simply embedded again when its text comes back: a cost, never a
 * wrong answer. Entries of forgotten subjects are deleted from both the vectors and the index.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { ChainableCommander, Cluster, Redis } from 'ioredis'
import { ConfigError, ServiceUnavailableError, type Problem } from '../errors.ts'
import { report, type TelemetryEvent } from '../observability/telemetry.ts'

export interface EmbeddingCache {
  /** One vector or undefined per hash, in order. A hit counts as a use (LRU, sliding TTL). */
  getMany(namespace: string, hashes: readonly string[], dimensions: number): Promise<(Float32Array | undefined)[]>
  /**
   * Stores vectors; returns how many older entries the bound evicted to make room now (0 when
   * unbounded, and for a cache that writes behind: it reports its evictions when the write runs).
   */
  setMany(namespace: string, entries: readonly (readonly [hash: string, vector: Float32Array])[]): Promise<number>
  delete(namespace: string, hashes: readonly string[]): Promise<number>
  /** Writes whatever is stored and not yet written (a cache that writes behind); rejects if it cannot. */
  flush?(): Promise<void>
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
  /** The longest a stored vector waits for a lookup to carry it before a write of its own; default 1000 ms. */
  readonly writeDelayMs?: number
  /** At most this many vectors wait to be written (all models); beyond, the oldest are dropped. Default 10,000. */
  readonly maxQueued?: number
  /** How long `close()` waits for the last writes; default 2000 ms. */
  readonly closeTimeoutMs?: number
}

/** What the write-behind queue did since the cache was created (tests, diagnostics). */
export interface EmbeddingCacheWriteStats {
  /** Vectors waiting to be written. */
  readonly queued: number
  /** Vectors written (each write of a vector counts, a retried one again). */
  readonly written: number
  /** Pipelines whose writes failed (their vectors queued again). */
  readonly failedWrites: number
  /** Vectors given up on: the queue over `maxQueued`, or not written by `close()`. */
  readonly dropped: number
}

/** Hashes per command or script call: Lua's unpack and one reply stay small; a batch's calls share one pipeline. */
const SCRIPT_SLICE = 1000
const DEFAULT_WRITE_DELAY_MS = 1000
const DEFAULT_MAX_QUEUED = 10_000
const DEFAULT_CLOSE_TIMEOUT_MS = 2000

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

/** Vectors of one model waiting to be written: content hash → vector, oldest first. */
type Vectors = Map<string, Float32Array>

type PipelineResults = [error: Error | null, result: unknown][]

const bytes = (vector: Float32Array): Buffer => Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength)

export class RedisEmbeddingCache implements EmbeddingCache {
  readonly #redis: Redis | Cluster
  readonly #prefix: string
  readonly #ttl: number | undefined
  readonly #maxEntries: number | undefined
  readonly #address: string
  readonly #writeDelayMs: number
  readonly #maxQueued: number
  readonly #closeTimeoutMs: number
  /** Stored, not yet sent, per model. */
  readonly #queued = new Map<string, Vectors>()
  /** Sent, not yet acknowledged, per model: lookups serve them; `delete` removes hashes so a failure does not queue them again. */
  readonly #sending = new Map<string, Set<Vectors>>()
  /** Pipelines in flight that carry writes: `delete` and `flush` wait for them. */
  readonly #writes = new Set<Promise<unknown>>()
  #timer: NodeJS.Timeout | undefined
  /** The telemetry scope of the last store: deferred writes report their evictions and failures there. */
  #scope: (<R>(fn: () => R) => R) | undefined
  #closed = false
  readonly #stats = { written: 0, failedWrites: 0, dropped: 0 }

  constructor(redis: Redis | Cluster, options: RedisEmbeddingCacheOptions = {}) {
    this.#redis = redis
    this.#prefix = options.prefix ?? 'rs:emb'
    this.#ttl = options.ttlSeconds
    this.#maxEntries = options.maxEntries
    this.#address = options.address ?? 'the configured Redis'
    this.#writeDelayMs = options.writeDelayMs ?? DEFAULT_WRITE_DELAY_MS
    this.#maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED
    this.#closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS
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

  stats(): EmbeddingCacheWriteStats {
    let queued = 0
    for (const vectors of this.#queued.values()) queued += vectors.size
    return { queued, ...this.#stats }
  }

  async getMany(
    namespace: string,
    hashes: readonly string[],
    dimensions: number,
  ): Promise<(Float32Array | undefined)[]> {
    if (hashes.length === 0) return []
    const out: (Float32Array | undefined)[] = new Array(hashes.length)
    // Vectors stored in this process and not yet written are answered here: never embedded twice.
    let ask: string[] = hashes as string[]
    let at: number[] | undefined
    if (this.#queued.has(namespace) || this.#sending.has(namespace)) {
      ask = []
      at = []
      for (let i = 0; i < hashes.length; i++) {
        const vector = this.#pending(namespace, hashes[i])
        if (vector === undefined) {
          ask.push(hashes[i])
          at.push(i)
        } else out[i] = vector.length === dimensions ? vector.slice() : undefined
      }
      if (ask.length === 0) return out
    }

    const base = this.#base(namespace)
    // The queue rides this round trip, written before the read.
    const taken = this.#take(namespace)
    let values: (Buffer | null)[]
    if (taken === undefined && !this.#bounded)
      // Nothing to carry: a plain MGET (an ioredis pipeline costs more CPU than one command).
      values = await this.#redis.mgetBuffer(...ask.map((h) => base + h)).catch(this.#unavailable)
    else values = await this.#pipelined(namespace, base, ask, taken)
    for (let i = 0; i < values.length; i++) {
      const value = values[i]
      // A value of the wrong size (another dimension setting under a colliding name) is a miss.
      out[at === undefined ? i : at[i]] =
        value === null || value.length !== dimensions * 4 ? undefined : new Float32Array(new Uint8Array(value).buffer)
    }
    return out
  }

  /** One pipeline: the taken queue's writes (if any), then the lookup of `ask`; the lookup's values. */
  async #pipelined(
    namespace: string,
    base: string,
    ask: readonly string[],
    taken: Vectors | undefined,
  ): Promise<(Buffer | null)[]> {
    const pipeline = this.#redis.pipeline()
    const writes = taken === undefined ? 0 : this.#addWrites(pipeline, base, taken)
    if (!this.#bounded) pipeline.mgetBuffer(...ask.map((h) => base + h))
    else {
      const now = Date.now()
      for (let from = 0; from < ask.length; from += SCRIPT_SLICE) {
        const slice = ask.slice(from, from + SCRIPT_SLICE)
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
    }
    let results: PipelineResults
    try {
      const exec = pipeline.exec()
      results = ((await (taken === undefined ? exec : this.#tracked(exec))) ?? []) as PipelineResults
    } catch (error) {
      if (taken !== undefined) this.#settle(namespace, taken, error)
      return this.#unavailable(error)
    }
    if (taken !== undefined) this.#settle(namespace, taken, results.slice(0, writes))
    const reads = results.slice(writes)
    const failed = reads.find(([error]) => error !== null)
    if (failed) this.#unavailable(failed[0])
    return reads.flatMap(([, value]) => value as (Buffer | null)[])
  }

  /** Queues the vectors for the next round trip (or the timer); resolves at once. */
  async setMany(namespace: string, entries: readonly (readonly [string, Float32Array])[]): Promise<number> {
    if (entries.length === 0) return 0
    let vectors = this.#queued.get(namespace)
    if (vectors === undefined) this.#queued.set(namespace, (vectors = new Map()))
    for (const [hash, vector] of entries) {
      vectors.delete(hash) // newest last: the bound drops the oldest
      vectors.set(hash, vector.slice()) // the caller may reuse its array
    }
    this.#scope = AsyncLocalStorage.snapshot()
    this.#bound()
    // After close() nothing is left behind: written at once (a failure is counted as dropped, not thrown).
    if (this.#closed) await this.flush().catch(() => {})
    else this.#arm()
    return 0
  }

  async delete(namespace: string, hashes: readonly string[]): Promise<number> {
    if (hashes.length === 0) return 0
    let dropped = 0
    const queued = this.#queued.get(namespace)
    for (const hash of hashes) if (queued?.delete(hash)) dropped++
    for (const sent of this.#sending.get(namespace) ?? []) for (const hash of hashes) sent.delete(hash)
    // Ordered after every write already sent: a slower write cannot put a forgotten vector back.
    if (this.#writes.size > 0) await Promise.allSettled([...this.#writes])
    const base = this.#base(namespace)
    // A queued vector had missed in Redis (that is why it was embedded): counted as one of the cache's.
    if (!this.#bounded)
      return dropped + (await this.#redis.del(...hashes.map((h) => base + h)).catch(this.#unavailable))
    const results = await this.#redis
      .pipeline()
      .del(...hashes.map((h) => base + h))
      .zrem(`${base}lru`, ...hashes)
      .exec()
      .catch(this.#unavailable)
    const failed = results?.find(([error]) => error !== null)
    if (failed) this.#unavailable(failed[0])
    return dropped + Number(results?.[0]?.[1] ?? 0)
  }

  /**
   * Writes every queued vector now (and waits for writes in flight). Rejects with
   * RS_SERVICE_UNAVAILABLE if a write fails; its vectors stay queued for the next try.
   */
  async flush(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#writes.size > 0) await Promise.allSettled([...this.#writes])
    const failure = await this.#writeQueued()
    if (failure !== undefined) this.#unavailable(failure)
  }

  /**
   * Flushes for at most `closeTimeoutMs`, then drops (and counts) what was not written. Never
   * throws; the Redis client stays open (its owner closes it). Later stores are written at once.
   */
  async close(): Promise<void> {
    this.#closed = true
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#closeTimeoutMs)))
    await Promise.race([this.flush().catch(() => {}), timeout])
    clearTimeout(timer)
    clearTimeout(this.#timer)
    this.#timer = undefined
    for (const [namespace, vectors] of this.#queued) this.#drop(namespace, vectors.size)
    this.#queued.clear()
  }

  #pending(namespace: string, hash: string): Float32Array | undefined {
    const queued = this.#queued.get(namespace)?.get(hash)
    if (queued !== undefined) return queued
    for (const sent of this.#sending.get(namespace) ?? []) {
      const vector = sent.get(hash)
      if (vector !== undefined) return vector
    }
    return undefined
  }

  /** Moves a model's queue to "sending"; undefined when nothing is queued. */
  #take(namespace: string): Vectors | undefined {
    const vectors = this.#queued.get(namespace)
    if (vectors === undefined) return undefined
    this.#queued.delete(namespace)
    if (this.#queued.size === 0) {
      // The timer counts from the oldest vector waiting: the next store starts a new delay.
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    let sending = this.#sending.get(namespace)
    if (sending === undefined) this.#sending.set(namespace, (sending = new Set()))
    sending.add(vectors)
    return vectors
  }

  /** Adds the store of `vectors` to a pipeline; returns how many commands that made. */
  #addWrites(pipeline: ChainableCommander, base: string, vectors: Vectors): number {
    const entries = [...vectors]
    let commands = 0
    const now = Date.now()
    for (let from = 0; from < entries.length; from += SCRIPT_SLICE, commands++) {
      const slice = entries.slice(from, from + SCRIPT_SLICE)
      if (!this.#bounded) pipeline.mset(...slice.flatMap(([hash, vector]) => [base + hash, bytes(vector)]))
      else
        (pipeline as unknown as ScriptPipeline).ragstreamEmbSet(
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
    return commands
  }

  #tracked<T>(promise: Promise<T>): Promise<T> {
    this.#writes.add(promise)
    const untrack = (): void => void this.#writes.delete(promise)
    promise.then(untrack, untrack)
    return promise
  }

  /**
   * The end of a write: counts and reports it; a failed one queues its vectors again (those not
   * deleted or stored anew meanwhile) for the next round trip or the timer. Returns the failure.
   */
  #settle(namespace: string, vectors: Vectors, outcome: PipelineResults | unknown): unknown {
    const sending = this.#sending.get(namespace)
    sending?.delete(vectors)
    if (sending?.size === 0) this.#sending.delete(namespace)
    const failure = Array.isArray(outcome)
      ? (outcome as PipelineResults).find(([error]) => error !== null)?.[0]
      : (outcome ?? new Error('no reply'))
    if (failure === undefined) {
      this.#stats.written += vectors.size
      if (this.#bounded) {
        const evicted = (outcome as PipelineResults).reduce((sum, [, n]) => sum + Number(n), 0)
        if (evicted > 0) this.#report({ kind: 'embedding-cache-evictions', model: namespace, evicted })
      }
      return undefined
    }
    this.#stats.failedWrites++
    this.#report({ kind: 'embedding-cache-write-failure', model: namespace, vectors: vectors.size })
    if (this.#closed) {
      this.#drop(namespace, vectors.size)
      return failure
    }
    let queued = this.#queued.get(namespace)
    if (queued === undefined) this.#queued.set(namespace, (queued = new Map()))
    // Older than anything queued since, and never over a vector stored anew.
    const again = new Map([...vectors].filter(([hash]) => !queued.has(hash)))
    for (const [hash, vector] of queued) again.set(hash, vector)
    this.#queued.set(namespace, again)
    this.#bound()
    this.#arm()
    return failure
  }

  /** Writes every model's queue, one pipeline each; resolves with the first failure (never rejects). */
  async #writeQueued(): Promise<unknown> {
    const namespaces = [...this.#queued.keys()]
    const failures = await Promise.all(
      namespaces.map(async (namespace) => {
        const vectors = this.#take(namespace)
        if (vectors === undefined) return undefined
        const pipeline = this.#redis.pipeline()
        this.#addWrites(pipeline, this.#base(namespace), vectors)
        const outcome = await this.#tracked(pipeline.exec()).then(
          (results) => results ?? [],
          (error: unknown) => error,
        )
        return this.#settle(namespace, vectors, outcome)
      }),
    )
    return failures.find((f) => f !== undefined)
  }

  /** A timer for what no lookup takes; unref'd, so it never keeps a process alive. */
  #arm(): void {
    if (this.#timer !== undefined || this.#queued.size === 0) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#writeQueued()
    }, this.#writeDelayMs)
    this.#timer.unref()
  }

  /** Keeps the queue within `maxQueued`, dropping the oldest vectors (each costs a re-embed if its text returns). */
  #bound(): void {
    let excess = this.stats().queued - this.#maxQueued
    for (const [namespace, vectors] of this.#queued) {
      if (excess <= 0) break
      let dropped = 0
      for (const hash of vectors.keys()) {
        if (excess <= 0) break
        vectors.delete(hash)
        excess--
        dropped++
      }
      if (vectors.size === 0) this.#queued.delete(namespace)
      this.#drop(namespace, dropped)
    }
  }

  #drop(namespace: string, vectors: number): void {
    if (vectors === 0) return
    this.#stats.dropped += vectors
    this.#report({ kind: 'embedding-cache-dropped', model: namespace, vectors })
  }

  #report(event: TelemetryEvent): void {
    if (this.#scope === undefined) report(event)
    else this.#scope(() => report(event))
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
