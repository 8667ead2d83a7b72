/**
 * A minimal in-process StateStore for the runtime's tests, used until src/state's in-memory store
 * lands. It keeps committed data per partition in a Map, so a process restart loses it and the
 * runtime must restore from the changelog (offset 0).
 */
import type { ChangelogRecord, StateStore } from '../../src/state/store.ts'

export class MapStateStore implements StateStore {
  readonly name: string
  readonly #committed = new Map<number, Map<string, Buffer>>()
  readonly #checkpoints = new Map<number, bigint>()
  #overlay = new Map<string, { partition: number; key: string; value: Buffer | null }>()
  #prefetched = new Set<string>()

  constructor(name: string) {
    this.name = name
  }

  #data(partition: number): Map<string, Buffer> {
    let data = this.#committed.get(partition)
    if (!data) this.#committed.set(partition, (data = new Map()))
    return data
  }

  async prefetch(partition: number, keys: Iterable<string>): Promise<void> {
    for (const key of keys) this.#prefetched.add(`${partition}\u0000${key}`)
  }

  get(partition: number, key: string): Buffer | undefined {
    const id = `${partition}\u0000${key}`
    if (!this.#prefetched.has(id)) throw new Error(`key ${key} of partition ${partition} was not prefetched`)
    const pending = this.#overlay.get(id)
    if (pending) return pending.value ?? undefined
    return this.#data(partition).get(key)
  }

  put(partition: number, key: string, value: Buffer): void {
    const id = `${partition}\u0000${key}`
    this.#overlay.delete(id)
    this.#overlay.set(id, { partition, key, value })
  }

  delete(partition: number, key: string): void {
    const id = `${partition}\u0000${key}`
    this.#overlay.delete(id)
    this.#overlay.set(id, { partition, key, value: null })
  }

  #drained: { partition: number; key: string; value: Buffer | null }[] = []

  drainChangelog(): ChangelogRecord[] {
    const records = [...this.#overlay.values()]
    this.#drained.push(...records)
    this.#overlay = new Map()
    return records.map((r) => ({ store: this.name, ...r }))
  }

  async flush(checkpoints: ReadonlyMap<number, bigint>): Promise<void> {
    for (const r of [...this.#drained, ...this.#overlay.values()]) {
      if (r.value === null) this.#data(r.partition).delete(r.key)
      else this.#data(r.partition).set(r.key, r.value)
    }
    for (const [partition, offset] of checkpoints) this.#checkpoints.set(partition, offset)
    this.#drained = []
    this.#overlay = new Map()
    this.#prefetched = new Set()
  }

  discard(): void {
    this.#drained = []
    this.#overlay = new Map()
    this.#prefetched = new Set()
  }

  async checkpoint(partition: number): Promise<bigint | undefined> {
    return this.#checkpoints.get(partition)
  }

  async restore(partition: number, records: readonly { key: string; value: Buffer | null }[], nextOffset: bigint): Promise<void> {
    const data = this.#data(partition)
    for (const r of records) {
      if (r.value === null) data.delete(r.key)
      else data.set(r.key, r.value)
    }
    this.#checkpoints.set(partition, nextOffset)
  }

  async clear(partition: number): Promise<void> {
    this.#committed.delete(partition)
    this.#checkpoints.delete(partition)
  }

  async close(): Promise<void> {}
}
