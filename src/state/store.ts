/**
 * The state-store contract shared by the runtime, the test driver and every store implementation
 * (in-memory, Redis, Redis Cluster). One conformance suite (test/state/conformance.ts) runs against
 * all of them.
 *
 * A store is partitioned exactly like the input topic of the task that owns it: partition p of store
 * `customers` is only ever written by the task owning input partition p ("one owner per key").
 *
 * Life of a batch (see design point 4):
 *   1. `prefetch(p, keys, prefixes)` — one round trip per store partition per batch loads every key the
 *      batch will read, and every entry under each prefix it will scan.
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

  /**
   * Loads these keys of one partition into the read cache, and every entry whose key starts with one
   * of `prefixes` (each must contain SCAN_SEPARATOR, see `groupPrefix`, or be `WHOLE_PARTITION`),
   * in one round trip.
   */
  prefetch(partition: number, keys: Iterable<string>, prefixes?: Iterable<string>): Promise<void>
  /** The value as this batch sees it (overlay first). Reading a key that was not prefetched throws. */
  get(partition: number, key: string): Buffer | undefined
  /**
   * Every entry whose key starts with `prefix`, as this batch sees it (overlay first, deletes
   * applied), in ascending key order (JavaScript string order). Scanning a prefix that was not
   * prefetched throws RS_STATE_NOT_PREFETCHED.
   */
  scan(partition: number, prefix: string): [string, Buffer][]
  put(partition: number, key: string, value: Buffer): void
  delete(partition: number, key: string): void

  /** Every change since the last drain, in write order, last write per key. */
  drainChangelog(): ChangelogRecord[]
  /** Persists the overlay and the checkpoints (next changelog offset per partition) atomically per partition. */
  flush(checkpoints: ReadonlyMap<number, bigint>): Promise<void>
  /**
   * True when `flush` itself refuses, atomically with the write, a partition whose stored checkpoint
   * is not the one this store last read (`checkpoint`), restored or flushed: RS_STATE_LOST when it is
   * older or missing, RS_STATE_FENCED when newer (re-applying the same checkpoint is accepted). The
   * runtime then skips its own checkpoint read before each flush. Absent or false: it reads first.
   */
  readonly flushComparesCheckpoints?: boolean
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

/**
 * Prefix scans cover "grouped" keys only: keys containing SCAN_SEPARATOR (U+0000). A Redis store
 * indexes those keys (and only those) in a sorted set per partition, so stores whose keys never
 * contain it pay nothing for the capability. The one exception is WHOLE_PARTITION, which lists
 * every key. Build grouped keys with `groupedKey`, scan a group with
 * `groupPrefix`.
 */
export const SCAN_SEPARATOR = '\u0000'

/** The group part of a grouped key, escaped so that it never contains the separator. */
function escapeGroup(group: string): string {
  if (!group.includes('\u0000') && !group.includes('\u0001')) return group
  return group.replaceAll('\u0001', '\u0001\u0002').replaceAll('\u0000', '\u0001\u0001')
}

/** The scan prefix of a group: every `groupedKey(group, member)` starts with it, no other key does. */
export function groupPrefix(group: string): string {
  return escapeGroup(group) + SCAN_SEPARATOR
}

/** The key of one member of a group (e.g. a join's subscription: right key → left key). */
export function groupedKey(group: string, member: string): string {
  return escapeGroup(group) + SCAN_SEPARATOR + member
}

/** The member part of a grouped key read back from a scan of `prefix`. */
export function memberOf(prefix: string, key: string): string {
  return key.slice(prefix.length)
}

/**
 * The scan "prefix" of every key of a partition, grouped or not: what a CDC table source lists when
 * a truncate or a completed snapshot removes the entities it no longer has (src/operators/table-source.ts).
 * It costs a read of the whole partition (one HGETALL in Redis), so it is for rare events only.
 */
export const WHOLE_PARTITION = ''

/** Throws unless `prefix` can be scanned (contains the separator, or is WHOLE_PARTITION). */
export function assertScannable(store: string, prefix: string): void {
  if (prefix !== WHOLE_PARTITION && !prefix.includes(SCAN_SEPARATOR)) {
    throw new RangeError(
      `store "${store}": scan prefix ${JSON.stringify(prefix)} has no SCAN_SEPARATOR; only grouped keys (groupedKey) or the whole partition (WHOLE_PARTITION) can be scanned`,
    )
  }
}

/** What one batch reads: keys per store and partition, plus (optionally) prefixes it scans. */
export type PrefetchKeys = Map<string, Map<number, Set<string>>>

/**
 * A batch's prefetch plan, as `ProcessorTopology.prefetchKeys` returns it: the map holds point keys;
 * `prefixes` the scans, per store and partition. `prefetchAll` loads both, one round trip per store
 * partition.
 */
export class PrefetchPlan extends Map<string, Map<number, Set<string>>> {
  readonly prefixes: PrefetchKeys = new Map()

  key(store: string, partition: number, key: string): void {
    add(this, store, partition, key)
  }

  prefix(store: string, partition: number, prefix: string): void {
    add(this.prefixes, store, partition, prefix)
  }
}

function add(map: PrefetchKeys, store: string, partition: number, value: string): void {
  let partitions = map.get(store)
  if (partitions === undefined) map.set(store, (partitions = new Map()))
  let set = partitions.get(partition)
  if (set === undefined) partitions.set(partition, (set = new Set()))
  set.add(value)
}

/**
 * Loads a batch's plan into its stores, every store partition concurrently, one `prefetch` (one
 * round trip) each. `unknown` names a store the plan wants but `stores` lacks.
 */
export async function prefetchAll(
  plan: PrefetchKeys | PrefetchPlan,
  stores: ReadonlyMap<string, StateStore>,
  unknown: (store: string) => Error,
): Promise<void> {
  const prefixes = plan instanceof PrefetchPlan ? plan.prefixes : undefined
  const loads: Promise<void>[] = []
  const names = new Set([...plan.keys(), ...(prefixes?.keys() ?? [])])
  for (const name of names) {
    const store = stores.get(name)
    if (store === undefined) throw unknown(name)
    const keys = plan.get(name)
    const scans = prefixes?.get(name)
    const partitions = new Set([...(keys?.keys() ?? []), ...(scans?.keys() ?? [])])
    for (const partition of partitions)
      loads.push(store.prefetch(partition, keys?.get(partition) ?? [], scans?.get(partition)))
  }
  await Promise.all(loads)
}
