// A minimal in-memory StateStore for the chunk-set tests: the interface's overlay/changelog
// semantics (reads see writes, drain returns last write per key), no persistence. The product's
// in-memory store (src/state) will replace it once it lands.
import type { ChangelogRecord, StateStore } from '../../src/state/store.ts'

export class MemoryStateStore implements StateStore {
  readonly name: string
  readonly committed = new Map<string, Buffer>()
  #overlay = new Map<string, Buffer | null>()
  #undrained = new Map<string, Buffer | null>()

  constructor(name: string) {
    this.name = name
  }

  #k(partition: number, key: string): string {
    return `${partition}\u0000${key}`
  }
  async prefetch(): Promise<void> {}
  get(partition: number, key: string): Buffer | undefined {
    const k = this.#k(partition, key)
    if (this.#overlay.has(k)) return this.#overlay.get(k) ?? undefined
    return this.committed.get(k)
  }
  put(partition: number, key: string, value: Buffer): void {
    this.#overlay.set(this.#k(partition, key), value)
    this.#undrained.delete(this.#k(partition, key))
    this.#undrained.set(this.#k(partition, key), value)
  }
  delete(partition: number, key: string): void {
    this.#overlay.set(this.#k(partition, key), null)
    this.#undrained.delete(this.#k(partition, key))
    this.#undrained.set(this.#k(partition, key), null)
  }
  drainChangelog(): ChangelogRecord[] {
    const drained = this.#undrained
    this.#undrained = new Map()
    return [...drained].map(([k, value]) => {
      const [p, key] = k.split('\u0000')
      return { store: this.name, partition: Number(p), key, value }
    })
  }
  async flush(): Promise<void> {
    for (const [k, v] of this.#overlay) {
      if (v === null) this.committed.delete(k)
      else this.committed.set(k, v)
    }
    this.#overlay = new Map()
  }
  discard(): void {
    this.#overlay = new Map()
    this.#undrained = new Map()
  }
  async checkpoint(): Promise<bigint | undefined> {
    return undefined
  }
  async restore(): Promise<void> {}
  async clear(): Promise<void> {}
  async close(): Promise<void> {}
}
