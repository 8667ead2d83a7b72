/**
 * A per-topology embedding budget: at most N items and/or T (approximate or billed) tokens per
 * minute. It throttles — a call waits until the budget allows it — and never drops or skips a
 * record. Two token buckets refilled continuously (capacity = the per-minute limit); callers queue
 * in arrival order. A call larger than a whole minute's budget waits for a full bucket and then
 * runs, leaving the bucket in debt, so oversized batches are slowed down, not refused.
 *
 * The budget is per process: with several workers, give each its share of the limit.
 */

export interface EmbeddingBudgetLimits {
  readonly maxItemsPerMinute?: number
  readonly maxTokensPerMinute?: number
}

class Bucket {
  readonly capacity: number
  readonly perMs: number
  level: number
  at: number

  constructor(perMinute: number, now: number) {
    this.capacity = perMinute
    this.perMs = perMinute / 60_000
    this.level = perMinute
    this.at = now
  }

  refill(now: number): void {
    this.level = Math.min(this.capacity, this.level + (now - this.at) * this.perMs)
    this.at = now
  }

  /** Milliseconds until `amount` (capped at capacity) is available. */
  waitFor(amount: number): number {
    const needed = Math.min(amount, this.capacity)
    return this.level >= needed ? 0 : Math.ceil((needed - this.level) / this.perMs)
  }
}

export class EmbeddingBudget {
  readonly #items: Bucket | undefined
  readonly #tokens: Bucket | undefined
  #queue: Promise<void> = Promise.resolve()
  #throttledMs = 0

  constructor(limits: EmbeddingBudgetLimits) {
    const now = performance.now()
    this.#items = limits.maxItemsPerMinute ? new Bucket(limits.maxItemsPerMinute, now) : undefined
    this.#tokens = limits.maxTokensPerMinute ? new Bucket(limits.maxTokensPerMinute, now) : undefined
  }

  /** Total time callers spent waiting for budget. */
  get throttledMs(): number {
    return this.#throttledMs
  }

  /** Waits until `items` and `tokens` fit the budget, then takes them. Returns how long it waited. */
  acquire(items: number, tokens: number): Promise<number> {
    const turn = this.#queue.then(() => this.#take(items, tokens))
    this.#queue = turn.then(
      () => undefined,
      () => undefined,
    )
    return turn
  }

  async #take(items: number, tokens: number): Promise<number> {
    const started = performance.now()
    let slept = false
    for (;;) {
      const now = performance.now()
      this.#items?.refill(now)
      this.#tokens?.refill(now)
      const wait = Math.max(this.#items?.waitFor(items) ?? 0, this.#tokens?.waitFor(tokens) ?? 0)
      if (wait === 0) break
      slept = true
      await new Promise((resolve) => setTimeout(resolve, wait))
    }
    if (this.#items) this.#items.level -= items
    if (this.#tokens) this.#tokens.level -= tokens
    const waited = slept ? performance.now() - started : 0
    this.#throttledMs += waited
    return waited
  }
}
