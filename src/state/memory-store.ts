/**
 * An in-memory StateStore with the same contract as the Redis store: a batch's writes live in an
 * overlay that its reads see; reads need a prefetch (RS_STATE_NOT_PREFETCHED otherwise); `flush`
 * writes the overlay and the checkpoints to the backing data, refusing a checkpoint older than the
 * stored one (RS_STATE_FENCED). Instances over one `MemoryStateBacking` share committed data the way
 * workers share Redis. Used by the test driver; the shared conformance suite runs against it.
 */
import { RagstreamError } from '../errors.ts'
import { assertScannable, type ChangelogRecord, type StateStore } from './store.ts'

interface PartitionData {
  readonly values: Map<string, Buffer>
  checkpoint: bigint | undefined
}

/** Committed data of any number of stores, shared by every store instance opened over it. */
export class MemoryStateBacking {
  readonly #partitions = new Map<string, PartitionData>()

  partition(store: string, partition: number): PartitionData {
    const id = `${store}\u0000${partition}`
    let data = this.#partitions.get(id)
    if (data === undefined) this.#partitions.set(id, (data = { values: new Map(), checkpoint: undefined }))
    return data
  }

  peek(store: string, partition: number): PartitionData | undefined {
    return this.#partitions.get(`${store}\u0000${partition}`)
  }

  drop(store: string, partition: number): void {
    this.#partitions.delete(`${store}\u0000${partition}`)
  }

  /** Partitions of `store` holding committed data or a checkpoint. */
  partitionsOf(store: string): number[] {
    const prefix = `${store}\u0000`
    return [...this.#partitions.keys()]
      .filter((id) => id.startsWith(prefix))
      .map((id) => Number(id.slice(prefix.length)))
      .sort((a, b) => a - b)
  }
}

export class MemoryStateStore implements StateStore {
  readonly name: string
  readonly #backing: MemoryStateBacking
  /** This batch's writes per partition; null = deleted. */
  readonly #overlay = new Map<number, Map<string, Buffer | null>>()
  /** What this batch prefetched: committed values as read (null = absent). */
  readonly #cache = new Map<number, Map<string, Buffer | null>>()
  /** Prefixes this batch prefetched for scans, with the committed keys found under each. */
  readonly #scanned = new Map<number, Map<string, string[]>>()
  /** Changed keys in write order (last write per key; re-writing moves a key to the end). */
  readonly #changed = new Map<string, { partition: number; key: string }>()
  #closed = false

  constructor(name: string, backing: MemoryStateBacking = new MemoryStateBacking()) {
    this.name = name
    this.#backing = backing
  }

  #open(): void {
    if (this.#closed) throw new Error(`store '${this.name}' is closed`)
  }

  async prefetch(partition: number, keys: Iterable<string>, prefixes?: Iterable<string>): Promise<void> {
    this.#open()
    let cache = this.#cache.get(partition)
    if (cache === undefined) this.#cache.set(partition, (cache = new Map()))
    const values = this.#backing.peek(this.name, partition)?.values
    for (const key of keys) if (!cache.has(key)) cache.set(key, values?.get(key) ?? null)
    if (prefixes === undefined) return
    let scanned = this.#scanned.get(partition)
    for (const prefix of prefixes) {
      assertScannable(this.name, prefix)
      if (scanned?.has(prefix)) continue
      if (scanned === undefined) this.#scanned.set(partition, (scanned = new Map()))
      const found: string[] = []
      for (const [key, value] of values ?? []) {
        if (!key.startsWith(prefix)) continue
        found.push(key)
        if (!cache.has(key)) cache.set(key, value)
      }
      scanned.set(prefix, found)
    }
  }

  scan(partition: number, prefix: string): [string, Buffer][] {
    const committed = this.#scanned.get(partition)?.get(prefix)
    if (committed === undefined) {
      throw new RagstreamError(
        'RS_STATE_NOT_PREFETCHED',
        `store '${this.name}' partition ${partition}: prefix ${JSON.stringify(prefix)} was scanned without being prefetched`,
        { context: { store: this.name, partition } },
      )
    }
    return scanEntries(committed, this.#cache.get(partition), this.#overlay.get(partition), prefix)
  }

  get(partition: number, key: string): Buffer | undefined {
    const overlay = this.#overlay.get(partition)
    if (overlay !== undefined && overlay.has(key)) return overlay.get(key) ?? undefined
    const cache = this.#cache.get(partition)
    if (cache === undefined || !cache.has(key)) {
      throw new RagstreamError(
        'RS_STATE_NOT_PREFETCHED',
        `store '${this.name}' partition ${partition}: key '${key}' was read without being prefetched`,
        {
          context: { store: this.name, partition },
        },
      )
    }
    return cache.get(key) ?? undefined
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

  #fence(partition: number, checkpoint: bigint): void {
    const stored = this.#backing.peek(this.name, partition)?.checkpoint
    if (stored !== undefined && stored > checkpoint) {
      throw new RagstreamError(
        'RS_STATE_FENCED',
        `store '${this.name}' partition ${partition} holds checkpoint ${stored}, newer than ${checkpoint}: another instance owns it`,
        {
          context: { store: this.name, partition },
        },
      )
    }
  }

  async flush(checkpoints: ReadonlyMap<number, bigint>): Promise<void> {
    this.#open()
    for (const [partition, checkpoint] of checkpoints) this.#fence(partition, checkpoint)
    for (const [partition, overlay] of this.#overlay) {
      const { values } = this.#backing.partition(this.name, partition)
      for (const [key, value] of overlay) {
        if (value === null) values.delete(key)
        else values.set(key, value)
      }
    }
    for (const [partition, checkpoint] of checkpoints)
      this.#backing.partition(this.name, partition).checkpoint = checkpoint
    this.discard()
  }

  discard(): void {
    this.#overlay.clear()
    this.#cache.clear()
    this.#scanned.clear()
    this.#changed.clear()
  }

  async checkpoint(partition: number): Promise<bigint | undefined> {
    this.#open()
    return this.#backing.peek(this.name, partition)?.checkpoint
  }

  async restore(
    partition: number,
    records: readonly { key: string; value: Buffer | null }[],
    nextOffset: bigint,
  ): Promise<void> {
    this.#open()
    this.#fence(partition, nextOffset)
    const data = this.#backing.partition(this.name, partition)
    for (const { key, value } of records) {
      if (value === null) data.values.delete(key)
      else data.values.set(key, value)
    }
    data.checkpoint = nextOffset
  }

  async clear(partition: number): Promise<void> {
    this.#open()
    this.#backing.drop(this.name, partition)
  }

  /** Committed entries of a partition, for inspection in tests (not part of StateStore). */
  entries(partition: number): ReadonlyMap<string, Buffer> {
    return this.#backing.peek(this.name, partition)?.values ?? new Map()
  }

  /** Partitions holding committed data, for inspection in tests (not part of StateStore). */
  partitions(): number[] {
    return this.#backing.partitionsOf(this.name)
  }

  async close(): Promise<void> {
    this.#closed = true
  }
}

/**
 * A scan as a batch sees it: the committed keys found under `prefix` at prefetch (values in `cache`),
 * with the batch's overlay applied (puts added or replaced, deletes removed), in key order.
 */
export function scanEntries(
  committed: Iterable<string>,
  cache: ReadonlyMap<string, Buffer | null> | undefined,
  overlay: ReadonlyMap<string, Buffer | null> | undefined,
  prefix: string,
): [string, Buffer][] {
  const entries = new Map<string, Buffer>()
  for (const key of committed) {
    const value = overlay?.has(key) ? overlay.get(key) : cache?.get(key)
    if (value !== null && value !== undefined) entries.set(key, value)
  }
  if (overlay !== undefined) {
    for (const [key, value] of overlay) {
      if (value !== null && !entries.has(key) && key.startsWith(prefix)) entries.set(key, value)
    }
  }
  return [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}
