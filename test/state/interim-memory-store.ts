// A minimal in-memory StateStore used only until src/state/memory-store.ts lands, so the
// conformance suite has a second implementation to run against. Not product code.
import { RagstreamError } from '../../src/errors.ts'
import type { ChangelogRecord, StateStore } from '../../src/state/store.ts'

interface PartitionData {
  readonly values: Map<string, Buffer>
  checkpoint: bigint | undefined
}

/** What several store instances share, like one Redis. */
export class InterimMemoryBacking {
  readonly partitions = new Map<string, PartitionData>()
  partition(store: string, partition: number): PartitionData {
    const id = `${store}:${partition}`
    let data = this.partitions.get(id)
    if (!data) {
      data = { values: new Map(), checkpoint: undefined }
      this.partitions.set(id, data)
    }
    return data
  }
}

export class InterimMemoryStore implements StateStore {
  readonly name: string
  readonly #backing: InterimMemoryBacking
  readonly #overlay = new Map<number, Map<string, Buffer | null>>()
  readonly #cache = new Map<number, Map<string, Buffer | null>>()
  readonly #pending = new Map<string, ChangelogRecord>()

  constructor(backing: InterimMemoryBacking, name: string) {
    this.#backing = backing
    this.name = name
  }

  async prefetch(partition: number, keys: Iterable<string>): Promise<void> {
    const data = this.#backing.partition(this.name, partition)
    let cache = this.#cache.get(partition)
    if (!cache) this.#cache.set(partition, (cache = new Map()))
    for (const key of keys) if (!cache.has(key)) cache.set(key, data.values.get(key) ?? null)
  }

  get(partition: number, key: string): Buffer | undefined {
    const overlay = this.#overlay.get(partition)
    if (overlay?.has(key)) return overlay.get(key) ?? undefined
    const cache = this.#cache.get(partition)
    if (cache?.has(key)) return cache.get(key) ?? undefined
    throw new RagstreamError('RS_STATE_NOT_PREFETCHED', `store "${this.name}" partition ${partition}: key "${key}" was not prefetched`)
  }

  put(partition: number, key: string, value: Buffer): void {
    this.#write(partition, key, value)
  }

  delete(partition: number, key: string): void {
    this.#write(partition, key, null)
  }

  drainChangelog(): ChangelogRecord[] {
    const records = [...this.#pending.values()]
    this.#pending.clear()
    return records
  }

  async flush(checkpoints: ReadonlyMap<number, bigint>): Promise<void> {
    for (const [partition, checkpoint] of checkpoints) {
      const data = this.#backing.partition(this.name, partition)
      if (data.checkpoint !== undefined && data.checkpoint > checkpoint) throw this.#fenced(partition)
    }
    for (const [partition, checkpoint] of checkpoints) {
      const data = this.#backing.partition(this.name, partition)
      for (const [key, value] of this.#overlay.get(partition) ?? []) {
        if (value === null) data.values.delete(key)
        else data.values.set(key, value)
      }
      data.checkpoint = checkpoint
    }
    this.#overlay.clear()
    this.#cache.clear()
  }

  discard(): void {
    this.#overlay.clear()
    this.#cache.clear()
    this.#pending.clear()
  }

  async checkpoint(partition: number): Promise<bigint | undefined> {
    return this.#backing.partition(this.name, partition).checkpoint
  }

  async restore(partition: number, records: readonly { key: string; value: Buffer | null }[], nextOffset: bigint): Promise<void> {
    const data = this.#backing.partition(this.name, partition)
    if (data.checkpoint !== undefined && data.checkpoint > nextOffset) throw this.#fenced(partition)
    for (const { key, value } of records) {
      if (value === null) data.values.delete(key)
      else data.values.set(key, value)
    }
    data.checkpoint = nextOffset
    this.#cache.delete(partition)
  }

  async clear(partition: number): Promise<void> {
    this.#backing.partitions.delete(`${this.name}:${partition}`)
    this.#cache.delete(partition)
    this.#overlay.delete(partition)
  }

  async close(): Promise<void> {
    this.discard()
  }

  #write(partition: number, key: string, value: Buffer | null): void {
    let overlay = this.#overlay.get(partition)
    if (!overlay) this.#overlay.set(partition, (overlay = new Map()))
    overlay.set(key, value)
    const id = `${partition}:${key}`
    this.#pending.delete(id)
    this.#pending.set(id, { store: this.name, partition, key, value })
  }

  #fenced(partition: number): RagstreamError {
    return new RagstreamError('RS_STATE_FENCED', `store "${this.name}" partition ${partition}: a newer checkpoint is stored`)
  }
}
