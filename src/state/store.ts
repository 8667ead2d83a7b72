/**
 * The state-store contract shared by the runtime, the test driver and every store implementation
 * (in-memory, Redis, Redis Cluster). One conformance suite (test/state/conformance.ts) runs against
 * all of them.
 *
 * A store is partitioned exactly like the input topic of the task that owns it: partition p of store
 * `customers` is only ever written by the task owning input partition p ("one owner per key").
 *
 * Life of a batch (see design point 4):
 *   1. `prefetch(p, keys)` — one round trip per store per batch loads every key the batch will read.
 *   2. `get` / `put` / `delete` — synchronous; writes go to an in-memory overlay that reads see.
 *   3. `drainChangelog()` — the overlay's changes as changelog records; the runtime produces them in
 *      the same Kafka transaction as the outputs and the input offsets.
 *   4. After the transaction commits: `flush(checkpoints)` writes the overlay to the backing store
 *      together with each partition's changelog checkpoint (next changelog offset), atomically per
 *      partition. After an abort: `discard()` drops the overlay, so the store reads what was committed.
 *   Redis is therefore only ever a cache of committed changelog state: if it loses everything, the
 *   runtime restores each partition from changelog offset 0 (`checkpoint()` returns undefined).
 */

/** One changelog record: key and value bytes (null value = tombstone) for a store partition. */
export interface ChangelogRecord {
  readonly store: string
  readonly partition: number
  readonly key: string
  readonly value: Buffer | null
}

export interface StateStore {
  /** The store's name: also its changelog identity (`<application>-<name>-changelog`). */
  readonly name: string

  /** Loads these keys of one partition into the read cache, in one round trip. */
  prefetch(partition: number, keys: Iterable<string>): Promise<void>
  /** The value as this batch sees it (overlay first). Reading a key that was not prefetched throws. */
  get(partition: number, key: string): Buffer | undefined
  put(partition: number, key: string, value: Buffer): void
  delete(partition: number, key: string): void

  /** Every change since the last drain, in write order, last write per key. */
  drainChangelog(): ChangelogRecord[]
  /** Persists the overlay and the checkpoints (next changelog offset per partition) atomically per partition. */
  flush(checkpoints: ReadonlyMap<number, bigint>): Promise<void>
  /** Drops the overlay and the read cache (after an abort, or when a partition is revoked). */
  discard(): void

  /** The next changelog offset the backing store already holds for this partition; undefined = empty (restore from 0). */
  checkpoint(partition: number): Promise<bigint | undefined>
  /** Applies restored changelog records straight to the backing store, then sets the checkpoint. */
  restore(
    partition: number,
    records: readonly { key: string; value: Buffer | null }[],
    nextOffset: bigint,
  ): Promise<void>
  /** Removes every key of a partition (e.g. before a restore from offset 0). */
  clear(partition: number): Promise<void>

  close(): Promise<void>
}
