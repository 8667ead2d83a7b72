/**
 * Counts reported from inside a topology to whoever runs it.
 *
 * `ragstream run` imports a topology file that built its own embedder, decoders and govern stage at
 * import time, so none of them holds a handle on the runner's `Metrics`. Instead the runner calls the
 * topology (prepare, prefetchKeys, process) inside a telemetry scope — an AsyncLocalStorage, so the
 * scope follows the batch through every await — and each component reports to the scope it runs in.
 * Two runners in one process (tests, the demo) each see only the calls they made.
 *
 * Outside any scope (describe, the test driver, a unit test) a report goes nowhere; components keep
 * their own counters and `observe` options for those. Events carry counts, never values.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

/** What one govern batch did (the same numbers as its `observe` hook). */
export interface GovernTelemetry {
  readonly kind: 'govern'
  /** The govern node's name. */
  readonly node: string
  readonly emitted: number
  readonly denied: number
  /** Rows of a forgotten subject that produced only a delete. */
  readonly suppressed: number
  readonly deleted: number
  readonly requestsApplied: number
  readonly entitiesForgotten: number
  /** Values removed, per detector kind and `field:<path>`. */
  readonly redactions: Readonly<Record<string, number>>
}

/** Values a source decoder (`redactAtSource`) removed from one row. */
export interface SourceRedactionTelemetry {
  readonly kind: 'source-redactions'
  readonly topic: string
  readonly redactions: Readonly<Record<string, number>>
}

/** One successful call to the embedding service. */
export interface EmbeddingCallTelemetry {
  readonly kind: 'embedding-call'
  /** `<provider>:<model>@<dimensions>`. */
  readonly model: string
  readonly items: number
  readonly tokens: number
  /** Attempts beyond the first that the call needed. */
  readonly retries: number
  readonly latencyMs: number
  /** CPU time the call cost this machine (local models; 0 for a remote service). */
  readonly cpuMs: number
}

/** One call to the embedding service that failed (after its retries), by error code. */
export interface EmbeddingFailureTelemetry {
  readonly kind: 'embedding-failure'
  readonly model: string
  readonly code: string
  readonly retries: number
  readonly latencyMs: number
}

/** One `embed()`: distinct texts answered by the cache and texts that needed a call. */
export interface EmbeddingCacheTelemetry {
  readonly kind: 'embedding-cache'
  readonly model: string
  readonly hits: number
  readonly misses: number
}

/** Entries the embedding cache's bound evicted to store one batch's new vectors. */
export interface EmbeddingCacheEvictionTelemetry {
  readonly kind: 'embedding-cache-evictions'
  readonly model: string
  readonly evicted: number
}

/**
 * A write of the embedding cache's write-behind queue that failed: its vectors are queued again for
 * the next round trip (the batch that stored them already succeeded; a cache write never fails one).
 */
export interface EmbeddingCacheWriteFailureTelemetry {
  readonly kind: 'embedding-cache-write-failure'
  readonly model: string
  /** Vectors the failed write carried. */
  readonly vectors: number
}

/** Vectors the embedding cache gave up writing (queue over its bound, or not written by close): each costs a re-embed. */
export interface EmbeddingCacheDroppedTelemetry {
  readonly kind: 'embedding-cache-dropped'
  readonly model: string
  readonly vectors: number
}

/** Time one call waited for the embedding budget. */
export interface EmbeddingThrottleTelemetry {
  readonly kind: 'embedding-throttled'
  readonly model: string
  readonly ms: number
}

/** A truncate or a completed snapshot applied on one partition of a CDC table (src/operators/table-reset.ts). */
export interface TableResetTelemetry {
  readonly kind: 'table-reset'
  /** The table's node name. */
  readonly table: string
  readonly reset: 'truncate' | 'snapshot'
  readonly partition: number
  readonly rowsRemoved: number
}

export type TelemetryEvent =
  | GovernTelemetry
  | TableResetTelemetry
  | SourceRedactionTelemetry
  | EmbeddingCallTelemetry
  | EmbeddingFailureTelemetry
  | EmbeddingCacheTelemetry
  | EmbeddingCacheEvictionTelemetry
  | EmbeddingCacheWriteFailureTelemetry
  | EmbeddingCacheDroppedTelemetry
  | EmbeddingThrottleTelemetry

export type TelemetryListener = (event: TelemetryEvent) => void

const scope = new AsyncLocalStorage<TelemetryListener>()

/**
 * Runs `fn` with `listener` receiving every report made during it, including after its awaits.
 *
 * @example
 * const outputs = await withTelemetry((e) => counts.push(e), () => topology.process(records, stores, now))
 */
export function withTelemetry<T>(listener: TelemetryListener, fn: () => T): T {
  return scope.run(listener, fn)
}

/** Reports to the current scope's listener, if any. */
export function report(event: TelemetryEvent): void {
  scope.getStore()?.(event)
}

/** Whether a report would reach anyone (lets a hot path skip building an event). */
export function telemetryActive(): boolean {
  return scope.getStore() !== undefined
}
