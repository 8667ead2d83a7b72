/**
 * An embedding provider does one thing: turn one batch of texts into vectors with one API call (or
 * one local computation). Everything around it — deduplication, the cache, batching by items and
 * tokens, the concurrency limit, the budget, dimension checks and counters — is the Embedder's job
 * (embedder.ts), so a new provider is a few lines.
 */

export interface EmbeddingResult {
  /** One vector per input text, in input order. */
  readonly vectors: readonly ArrayLike<number>[]
  /** Tokens the service billed, when it says; otherwise the Embedder counts approximate tokens. */
  readonly tokens?: number
  /** Attempts beyond the first that the call needed (429/5xx/timeouts). */
  readonly retries?: number
  /** CPU time the call cost this machine (local models): their equivalent of billed tokens. */
  readonly cpuMs?: number
}

export interface EmbeddingProvider {
  /** Provider and model, e.g. `openai:text-embedding-3-small`, `hashing:v1`, `local:all-minilm-l6-v2-int8`. */
  readonly model: string
  /** The vector size the topology expects; any other size is an error. */
  readonly dimensions: number
  /** Largest batch per call, in items and in approximate tokens. */
  readonly maxBatchItems: number
  readonly maxBatchTokens: number
  /** Calls allowed in flight at once. */
  readonly maxConcurrency: number
  embedBatch(texts: readonly string[]): Promise<EmbeddingResult>
  /** Releases what the provider holds (the local provider's worker threads); optional. */
  close?(): Promise<void>
}
