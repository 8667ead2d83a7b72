/**
 * The right owner's subscription store, one entry per (right key, left key): who to answer when a
 * right row changes. A subscription writes one entry, an unsubscribe deletes one, a right change
 * reads its key's entries with one prefix scan — so every change costs a constant number of writes
 * and changelog records, however many left rows share the right key (issue 19: the earlier single
 * list per right key grew past Kafka's record limit and cost O(rows) per change).
 *
 * Upgrade from the list layout: a right key's list is migrated the first time the key is touched
 * (its entries written, the list deleted, all in that batch's transaction), so state migrates lazily
 * and completely without a stop. Every read path prefetches the right key itself for this. Rolling
 * back to a version that only knows the list layout is not supported once entries exist (it would
 * see no subscribers); reset the application's state (new application id, or delete its changelog
 * topics and Redis keys) to go back.
 */
import type { StateStore } from '../../state/store.ts'
import { groupPrefix, groupedKey, memberOf } from '../../state/store.ts'
import type { RecordScope } from '../../topology/compiled.ts'
import { decodeEntry, decodeLegacyIndex, entryBytes, type SubscriptionEntry } from './wire.ts'

export class SubscriptionStore {
  readonly #scope: RecordScope
  readonly #name: string

  constructor(scope: RecordScope, name: string) {
    this.#scope = scope
    this.#name = name
  }

  /** The prefetch key of a subscription's own entry. */
  static entryKey(rightKey: string, leftKey: string): string {
    return groupedKey(rightKey, leftKey)
  }

  /** The prefetch prefix of a right key's entries. */
  static prefix(rightKey: string): string {
    return groupPrefix(rightKey)
  }

  get(partition: number, rightKey: string, leftKey: string): SubscriptionEntry | undefined {
    const store = this.#store(partition, rightKey)
    const bytes = store.get(partition, groupedKey(rightKey, leftKey))
    return bytes === undefined ? undefined : decodeEntry(bytes)
  }

  /** Records the subscription; returns false when the same entry was already there (nothing written). */
  set(partition: number, rightKey: string, leftKey: string, leftPartition: number, hash: string | null): boolean {
    const known = this.get(partition, rightKey, leftKey)
    if (known !== undefined && known.partition === leftPartition && known.hash === hash) return false
    this.#scope.stores.get(this.#name)!.put(partition, groupedKey(rightKey, leftKey), entryBytes(leftPartition, hash))
    return true
  }

  /** Forgets the subscription; returns false when there was none. */
  delete(partition: number, rightKey: string, leftKey: string): boolean {
    if (this.get(partition, rightKey, leftKey) === undefined) return false
    this.#scope.stores.get(this.#name)!.delete(partition, groupedKey(rightKey, leftKey))
    return true
  }

  /** Every subscriber of a right key as the batch sees it, in left-key order. */
  *subscribers(partition: number, rightKey: string): Generator<[string, SubscriptionEntry]> {
    const store = this.#store(partition, rightKey)
    const prefix = groupPrefix(rightKey)
    for (const [key, bytes] of store.scan(partition, prefix)) yield [memberOf(prefix, key), decodeEntry(bytes)]
  }

  /** The store, with the right key's list-layout value (if any) migrated to entries first. */
  #store(partition: number, rightKey: string): StateStore {
    const store = this.#scope.stores.get(this.#name)!
    const legacy = store.get(partition, rightKey)
    if (legacy !== undefined) {
      for (const [leftKey, leftPartition, hash] of decodeLegacyIndex(legacy))
        store.put(partition, groupedKey(rightKey, leftKey), entryBytes(leftPartition, hash))
      store.delete(partition, rightKey)
    }
    return store
  }
}
