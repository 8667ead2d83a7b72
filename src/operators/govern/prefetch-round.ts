/** Keys a govern batch reads, gathered per store and partition and prefetched in one round trip per round. */
import type { StateStore } from '../../state/store.ts'

/** Keys to prefetch, per store and partition. */
export class PrefetchRound {
  readonly #keys = new Map<StateStore, Map<number, Set<string>>>()
  add(store: StateStore, partition: number, key: string): void {
    let partitions = this.#keys.get(store)
    if (partitions === undefined) this.#keys.set(store, (partitions = new Map()))
    let keys = partitions.get(partition)
    if (keys === undefined) partitions.set(partition, (keys = new Set()))
    keys.add(key)
  }
  async load(): Promise<void> {
    const loads: Promise<void>[] = []
    for (const [store, partitions] of this.#keys)
      for (const [partition, keys] of partitions) loads.push(store.prefetch(partition, keys))
    await Promise.all(loads)
    this.#keys.clear()
  }
}
