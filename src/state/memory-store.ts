/**
 * An in-memory StateStore: the same contract as the Redis store (overlay, prefetch-before-read,
 * changelog drain, flush with checkpoints), kept in process. Used by the test driver; the shared
 * conformance suite runs against it too.
 */
import type { ChangelogRecord, StateStore } from './store.ts'

export class MemoryStateStore implements StateStore {
  readonly name: string
  /** Committed state per partition: what the backing store holds. */
  readonly #committed = new Map<number, Map<string, Buffer>>()
  readonly #checkpoints = new Map<number, bigint>()
  /** This batch's writes per partition; null = deleted. */
  readonly #overlay = new Map<number, Map<string, Buffer | null>>()
  readonly #prefetched = new Map<number, Set<string>>()
  /** Changed keys in write order (last write per key wins; re-writing moves a key to the end). */
  readonly #changed = new Map<string, { partition: number; key: string }>()
  #closed = false

  constructor(name: string) {
    this.name = name
  }

  #open(): void {
    if (this.#closed) throw new Error(`store '${this.name}' is closed`)
  }

  #committedPartition(partition: number): Map<string, Buffer> {
    let map = this.#committed.get(partition)
    if (map === undefined) this.#committed.set(partition, (map = new Map()))
    return map
  }

  async prefetch(partition: number, keys: Iterable<string>): Promise<void> {
    this.#open()
    let set = this.#prefetched.get(partition)
    if (set === undefined) this.#prefetched.set(partition, (set = new Set()))
    for (const key of keys) set.add(key)
  }

  get(partition: number, key: string): Buffer | undefined {
    const overlay = this.#overlay.get(partition)
    if (overlay !== undefined && overlay.has(key)) return overlay.get(key) ?? undefined
    if (!this.#prefetched.get(partition)?.has(key)) {
      throw new Error(`store '${this.name}' partition ${partition}: key '${key}' was read without being prefetched`)
    }
    return this.#committed.get(partition)?.get(key)
  }

  put(partition: number, key: string, value: Buffer): void {
    this.#write(partition, key, value)
  }

  delete(partition: number, key: string): void {
    this.#write(partition, key, null)
  }

  #write(partition: number, key: string, value: Buffer | null): void {
    this.#open()
    let overlay = this.#overlay.get(partition)
    if (overlay === undefined) this.#overlay.set(partition, (overlay = new Map()))
    overlay.set(key, value)
    const id = `${partition}\u0000${key}`
    this.#changed.delete(id)
    this.#changed.set(id, { partition, key })
  }

  drainChangelog(): ChangelogRecord[] {
    const records: ChangelogRecord[] = []
    for (const { partition, key } of this.#changed.values()) {
      records.push({ store: this.name, partition, key, value: this.#overlay.get(partition)!.get(key)! })
    }
    this.#changed.clear()
    return records
  }

  async flush(checkpoints: ReadonlyMap<number, bigint>): Promise<void> {
    this.#open()
    for (const [partition, overlay] of this.#overlay) {
      const committed = this.#committedPartition(partition)
      for (const [key, value] of overlay) {
        if (value === null) committed.delete(key)
        else committed.set(key, value)
      }
    }
    for (const [partition, offset] of checkpoints) this.#checkpoints.set(partition, offset)
    this.#overlay.clear()
    this.#prefetched.clear()
    this.#changed.clear()
  }

  discard(): void {
    this.#overlay.clear()
    this.#prefetched.clear()
    this.#changed.clear()
  }

  async checkpoint(partition: number): Promise<bigint | undefined> {
    this.#open()
    return this.#checkpoints.get(partition)
  }

  async restore(partition: number, records: readonly { key: string; value: Buffer | null }[], nextOffset: bigint): Promise<void> {
    this.#open()
    const committed = this.#committedPartition(partition)
    for (const { key, value } of records) {
      if (value === null) committed.delete(key)
      else committed.set(key, value)
    }
    this.#checkpoints.set(partition, nextOffset)
  }

  async clear(partition: number): Promise<void> {
    this.#open()
    this.#committed.delete(partition)
    this.#checkpoints.delete(partition)
  }

  /** Committed keys of a partition, for inspection in tests (not part of StateStore). */
  entries(partition: number): ReadonlyMap<string, Buffer> {
    return this.#committed.get(partition) ?? new Map()
  }

  /** Partitions holding committed data. */
  partitions(): number[] {
    return [...this.#committed.keys()].sort((a, b) => a - b)
  }

  async close(): Promise<void> {
    this.#closed = true
  }
}
