/** Keys a govern batch reads, gathered per store and partition and prefetched in one round trip per round. */
import type { StateStore } from '../../state/store.ts'

/** Keys (and scan prefixes) to prefetch, per store and partition. */
export class PrefetchRound {
  readonly #keys = new Map<StateStore, Map<number, Set<string>>>()
  readonly #prefixes = new Map<StateStore, Map<number, Set<string>>>()
  add(store: StateStore, partition: number, key: string): void {
    addTo(this.#keys, store, partition, key)
  }
  /** A prefix the batch scans (see `groupPrefix` in src/state/store.ts). */
  addPrefix(store: StateStore, partition: number, prefix: string): void {
    addTo(this.#prefixes, store, partition, prefix)
  }
  async load(): Promise<void> {
    const loads: Promise<void>[] = []
    for (const [store, partitions] of this.#keys) {
      const scans = this.#prefixes.get(store)
      for (const [partition, keys] of partitions) loads.push(store.prefetch(partition, keys, scans?.get(partition)))
    }
    for (const [store, partitions] of this.#prefixes) {
      for (const [partition, prefixes] of partitions)
        if (!this.#keys.get(store)?.has(partition)) loads.push(store.prefetch(partition, [], prefixes))
    }
    await Promise.all(loads)
    this.#keys.clear()
    this.#prefixes.clear()
  }
}

function addTo(
  map: Map<StateStore, Map<number, Set<string>>>,
  store: StateStore,
  partition: number,
  value: string,
): void {
  let partitions = map.get(store)
  if (partitions === undefined) map.set(store, (partitions = new Map()))
  let values = partitions.get(partition)
  if (values === undefined) partitions.set(partition, (values = new Set()))
  values.add(value)
}
