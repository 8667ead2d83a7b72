/**
 * Retry pacing for transient failures (broker, Redis, embedding service). A retried batch is always
 * re-read from committed offsets, so backing off never skips a record; it only slows the retry down.
 */
export interface BackoffOptions {
  readonly initialMs?: number
  readonly maxMs?: number
}

export class Backoff {
  readonly #initialMs: number
  readonly #maxMs: number
  #attempt = 0

  constructor(options: BackoffOptions = {}) {
    this.#initialMs = options.initialMs ?? 100
    this.#maxMs = options.maxMs ?? 5_000
  }

  get attempt(): number {
    return this.#attempt
  }

  /** The next delay: exponential with full jitter in its upper half, capped. */
  next(): number {
    const base = Math.min(this.#maxMs, this.#initialMs * 2 ** this.#attempt)
    this.#attempt++
    return Math.round(base / 2 + (Math.random() * base) / 2)
  }

  reset(): void {
    this.#attempt = 0
  }
}

/** Resolves after `ms`, or early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** Rejects with a timeout error if `promise` does not settle within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
