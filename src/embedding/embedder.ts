/**
 * The embedding stage around a provider: for one batch of chunks,
 *   1. deduplicate by content hash,
 *   2. look every hash up in the cache (one round trip),
 *   3. split the misses into provider calls by item count and approximate tokens,
 *   4. run them with the provider's concurrency limit, each after the budget allows it,
 *   5. check every vector's size (RS_EMBEDDING_DIMENSIONS names the model and both sizes),
 *   6. hand the new vectors to the cache and return one vector per input. The Redis cache writes them
 *      behind (src/embedding/cache.ts): they ride its next lookup's round trip, so a batch costs one
 *      round trip to the cache, and a failed cache write never fails a batch.
 * A failing call fails the whole batch (the runtime retries it): vectors are never partial.
 *
 * Counters: `metrics()` keeps monotonic totals since construction; each call, failure, cache lookup
 * and budget wait is also reported to the telemetry scope it runs in (src/observability/telemetry.ts),
 * which is how `ragstream run` exports them without a handle on the topology's Embedder.
 *
 * @example
 * const embedder = new Embedder(new OpenAIProvider({ kind: 'openai', model: 'text-embedding-3-small', dimensions: 1536 }),
 *                               { cache: new RedisEmbeddingCache(redis), budget: new EmbeddingBudget({ maxTokensPerMinute: 1e6 }) })
 * const vectors = await embedder.embed(chunks) // chunks: { text, contentHash }[]
 */
import { RagstreamError } from '../errors.ts'
import { approxTokens } from '../chunking/size.ts'
import { report } from '../observability/telemetry.ts'
import type { EmbeddingBudget } from './budget.ts'
import type { EmbeddingCache } from './cache.ts'
import type { EmbeddingProvider, EmbeddingResult } from './provider.ts'

export interface EmbedItem {
  readonly text: string
  /** sha256 hex of `text` (Chunk.contentHash): the cache key. */
  readonly contentHash: string
}

export interface EmbedderOptions {
  readonly cache?: EmbeddingCache
  readonly budget?: EmbeddingBudget
}

/** Counters since the Embedder was created (monotonic; the runtime exports them as metrics). */
export interface EmbeddingMetrics {
  /** Provider calls that succeeded. */
  readonly calls: number
  /** Provider calls that failed (after the provider's own retries), by error code. */
  readonly failures: Readonly<Record<string, number>>
  /** Texts sent to the provider. */
  readonly items: number
  readonly cacheHits: number
  readonly cacheMisses: number
  /** Billed tokens when the provider reports them, approximate otherwise. */
  readonly tokens: number
  /** Retries inside provider calls (429/5xx/timeouts), of failed calls too. */
  readonly retries: number
  readonly latencyMsTotal: number
  readonly latencyMsMax: number
  /** Time spent waiting for the budget. */
  readonly throttledMs: number
  /** CPU time the provider spent on this machine (local models; 0 for remote services). */
  readonly cpuMs: number
}

export class Embedder {
  readonly #provider: EmbeddingProvider
  readonly #cache: EmbeddingCache | undefined
  readonly #budget: EmbeddingBudget | undefined
  readonly #metrics = {
    calls: 0,
    items: 0,
    cacheHits: 0,
    cacheMisses: 0,
    tokens: 0,
    retries: 0,
    latencyMsTotal: 0,
    latencyMsMax: 0,
    throttledMs: 0,
    cpuMs: 0,
  }
  readonly #failures: Record<string, number> = {}

  constructor(provider: EmbeddingProvider, options: EmbedderOptions = {}) {
    this.#provider = provider
    this.#cache = options.cache
    this.#budget = options.budget
  }

  /** `<provider>:<model>@<dimensions>`: the cache namespace and the `embedding_model` lineage field. */
  get model(): string {
    return `${this.#provider.model}@${this.#provider.dimensions}`
  }

  get dimensions(): number {
    return this.#provider.dimensions
  }

  /** Releases the provider's resources (the local model's worker threads). */
  async close(): Promise<void> {
    await this.#provider.close?.()
  }

  metrics(): EmbeddingMetrics {
    return { ...this.#metrics, failures: { ...this.#failures } }
  }

  /**
   * Fails fast at startup: one provider call with a short probe text (bypassing the cache) proves the
   * service answers, accepts the key and model, and returns vectors of the topology's size. Throws
   * RS_EMBEDDING_DIMENSIONS / RS_EMBEDDING_REJECTED / RS_EMBEDDING_FAILED like any call.
   */
  async verify(): Promise<void> {
    await this.#call([['ragstream-probe', 'ragstream embedding check']])
  }

  /** One vector per item, in order. Throws (retriable or not, see the error code) if any call fails. */
  async embed(items: readonly EmbedItem[]): Promise<Float32Array[]> {
    if (items.length === 0) return []
    const unique = new Map<string, string>() // content hash → text
    for (const item of items) if (!unique.has(item.contentHash)) unique.set(item.contentHash, item.text)
    const hashes = [...unique.keys()]
    const found = new Map<string, Float32Array>()

    if (this.#cache) {
      const cached = await this.#cache.getMany(this.model, hashes, this.dimensions)
      cached.forEach((vector, i) => {
        if (vector !== undefined) found.set(hashes[i], vector)
      })
    }
    const missing = hashes.filter((h) => !found.has(h))
    this.#metrics.cacheHits += hashes.length - missing.length
    this.#metrics.cacheMisses += missing.length
    report({ kind: 'embedding-cache', model: this.model, hits: hashes.length - missing.length, misses: missing.length })

    if (missing.length > 0) {
      const fresh = await this.#embedMissing(missing.map((h) => [h, unique.get(h) as string] as const))
      for (const [hash, vector] of fresh) found.set(hash, vector)
      // A cache that writes behind reports its evictions itself, when the write runs.
      const evicted = (await this.#cache?.setMany(this.model, fresh)) ?? 0
      if (evicted > 0) report({ kind: 'embedding-cache-evictions', model: this.model, evicted })
    }
    return items.map((item) => found.get(item.contentHash) as Float32Array)
  }

  async #embedMissing(missing: readonly (readonly [string, string])[]): Promise<[string, Float32Array][]> {
    const provider = this.#provider
    const batches: (readonly [string, string])[][] = []
    let batch: (readonly [string, string])[] = []
    let batchTokens = 0
    for (const entry of missing) {
      const tokens = approxTokens(entry[1])
      if (
        batch.length > 0 &&
        (batch.length >= provider.maxBatchItems || batchTokens + tokens > provider.maxBatchTokens)
      ) {
        batches.push(batch)
        batch = []
        batchTokens = 0
      }
      batch.push(entry)
      batchTokens += tokens
    }
    if (batch.length > 0) batches.push(batch)

    // The concurrency limit holds across every embed() in flight (tasks of one process share the Embedder).
    const results = await Promise.all(batches.map((batch) => this.#withSlot(() => this.#call(batch))))
    return results.flat()
  }

  #inFlight = 0
  readonly #waiting: (() => void)[] = []

  async #withSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#inFlight >= Math.max(1, this.#provider.maxConcurrency))
      await new Promise<void>((resolve) => this.#waiting.push(resolve))
    else this.#inFlight++
    try {
      return await fn()
    } finally {
      const next = this.#waiting.shift()
      if (next)
        next() // hand the slot over directly
      else this.#inFlight--
    }
  }

  async #call(batch: readonly (readonly [string, string])[]): Promise<[string, Float32Array][]> {
    const provider = this.#provider
    const texts = batch.map(([, text]) => text)
    const approx = texts.reduce((sum, t) => sum + approxTokens(t), 0)
    if (this.#budget) {
      const waited = await this.#budget.acquire(texts.length, approx)
      this.#metrics.throttledMs += waited
      if (waited > 0) report({ kind: 'embedding-throttled', model: this.model, ms: waited })
    }
    const started = performance.now()
    try {
      const { out, tokens, retries, cpuMs } = this.#checked(batch, await provider.embedBatch(texts), approx)
      const latency = performance.now() - started
      this.#metrics.calls++
      this.#metrics.items += texts.length
      this.#metrics.tokens += tokens
      this.#metrics.retries += retries
      this.#metrics.latencyMsTotal += latency
      this.#metrics.latencyMsMax = Math.max(this.#metrics.latencyMsMax, latency)
      this.#metrics.cpuMs += cpuMs
      report({
        kind: 'embedding-call',
        model: this.model,
        items: texts.length,
        tokens,
        retries,
        latencyMs: latency,
        cpuMs,
      })
      return out
    } catch (error) {
      // Providers put the attempts a failed call made in the error's context (openai.ts).
      const code = error instanceof RagstreamError ? error.code : 'unknown'
      const attempts = error instanceof RagstreamError ? Number(error.context.attempts) : NaN
      const retries = Number.isSafeInteger(attempts) && attempts > 1 ? attempts - 1 : 0
      this.#failures[code] = (this.#failures[code] ?? 0) + 1
      this.#metrics.retries += retries
      report({ kind: 'embedding-failure', model: this.model, code, retries, latencyMs: performance.now() - started })
      throw error
    }
  }

  #checked(
    batch: readonly (readonly [string, string])[],
    result: EmbeddingResult,
    approx: number,
  ): { out: [string, Float32Array][]; tokens: number; retries: number; cpuMs: number } {
    const provider = this.#provider
    const out: [string, Float32Array][] = new Array(batch.length)
    for (let i = 0; i < batch.length; i++) {
      const vector = result.vectors[i]
      if (vector === undefined || vector.length !== provider.dimensions) {
        const got = vector === undefined ? 'no' : `${vector.length}-dimensional`
        throw new RagstreamError(
          'RS_EMBEDDING_DIMENSIONS',
          `embedding model ${provider.model} returned ${got} vectors, but the topology expects ${provider.dimensions} dimensions`,
          {
            context: { model: provider.model, expected: provider.dimensions, actual: vector?.length },
            hint: "set the topology's embedding dimensions to the model's output size (or ask the model for that size), then re-index into a new version",
          },
        )
      }
      out[i] = [batch[i][0], vector instanceof Float32Array ? vector : Float32Array.from(vector)]
    }
    return { out, tokens: result.tokens ?? approx, retries: result.retries ?? 0, cpuMs: result.cpuMs ?? 0 }
  }
}
