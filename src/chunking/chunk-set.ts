/**
 * Chunks are a table too (design point 6). Per entity, the chunk-set store remembers which chunks
 * were last emitted and their fingerprints; a new version of the entity becomes
 *
 *   upserts    for chunks that are new or whose fingerprint changed (in index order), then
 *   tombstones for chunks that vanished,
 *
 * and nothing for unchanged chunks. Upserts come first so that, read in order, the entity is never
 * absent from the index while it changes. An entity delete tombstones every chunk it had; deleting an
 * entity the store does not know (the tombstone after a Debezium delete) yields nothing.
 *
 * The store is a changelogged StateStore: the set is written to the batch overlay together with the
 * outputs, so it commits (or aborts) in the same Kafka transaction as the chunk events it describes.
 *
 * Stored value (UTF-8 JSON, one per entity, key `<entity type>:<entity key>`):
 *   {"v":1,"c":[["<chunk id>","<fingerprint>"], …]}   in chunk-index order
 */
import type { StateStore } from '../state/store.ts'

export interface ChunkSetEntry {
  readonly id: string
  /** See chunkFingerprint(): content hash + emitted attributes. */
  readonly fingerprint: string
}

export interface ChunkSetChanges<T extends ChunkSetEntry> {
  /** New or changed chunks, in the order given. */
  readonly upserts: T[]
  /** Ids of chunks that vanished, in their previous order. Emit these after the upserts. */
  readonly tombstones: string[]
}

/** The diff itself, pure: previous set (undefined = entity unknown) vs the new chunks. */
export function diffChunkSet<T extends ChunkSetEntry>(
  previous: readonly ChunkSetEntry[] | undefined,
  next: readonly T[],
): ChunkSetChanges<T> {
  if (previous === undefined || previous.length === 0) return { upserts: [...next], tombstones: [] }
  const before = new Map<string, string>()
  for (const entry of previous) before.set(entry.id, entry.fingerprint)
  const upserts: T[] = []
  const kept = new Set<string>()
  for (const chunk of next) {
    kept.add(chunk.id)
    if (before.get(chunk.id) !== chunk.fingerprint) upserts.push(chunk)
  }
  const tombstones: string[] = []
  for (const entry of previous) if (!kept.has(entry.id)) tombstones.push(entry.id)
  return { upserts, tombstones }
}

const FORMAT_VERSION = 1

export function encodeChunkSet(entries: readonly ChunkSetEntry[]): Buffer {
  return Buffer.from(JSON.stringify({ v: FORMAT_VERSION, c: entries.map((e) => [e.id, e.fingerprint]) }))
}

export function decodeChunkSet(value: Buffer): ChunkSetEntry[] {
  const parsed = JSON.parse(value.toString('utf8')) as { v: number; c: [string, string][] }
  if (parsed.v !== FORMAT_VERSION || !Array.isArray(parsed.c))
    throw new Error(`unsupported chunk-set format version ${String(parsed.v)}`)
  return parsed.c.map(([id, fingerprint]) => ({ id, fingerprint }))
}

/**
 * The chunk-set store of one chunking node, over a changelogged StateStore. Synchronous: the
 * runtime prefetches `keyOf(entityType, entityKey)` for every entity of the batch first.
 */
export class ChunkSetStore {
  readonly #store: StateStore

  constructor(store: StateStore) {
    this.#store = store
  }

  get name(): string {
    return this.#store.name
  }

  /** The store key of an entity: what `prefetchKeys` must declare. */
  static keyOf(entityType: string, entityKey: string): string {
    return `${entityType}:${entityKey}`
  }

  /** The chunk set last emitted for an entity, or undefined if none. */
  get(partition: number, entityType: string, entityKey: string): ChunkSetEntry[] | undefined {
    const value = this.#store.get(partition, ChunkSetStore.keyOf(entityType, entityKey))
    return value === undefined ? undefined : decodeChunkSet(value)
  }

  /** Diffs the entity's new chunks against its stored set and records the new set (or forgets the entity when it has no chunks left). */
  update<T extends ChunkSetEntry>(
    partition: number,
    entityType: string,
    entityKey: string,
    next: readonly T[],
  ): ChunkSetChanges<T> {
    const key = ChunkSetStore.keyOf(entityType, entityKey)
    const stored = this.#store.get(partition, key)
    const previous = stored === undefined ? undefined : decodeChunkSet(stored)
    const changes = diffChunkSet(previous, next)
    if (changes.upserts.length === 0 && changes.tombstones.length === 0) return changes
    if (next.length === 0) this.#store.delete(partition, key)
    else this.#store.put(partition, key, encodeChunkSet(next))
    return changes
  }

  /** The entity was deleted: tombstones for every chunk it had (none if it was unknown). */
  remove(partition: number, entityType: string, entityKey: string): string[] {
    const key = ChunkSetStore.keyOf(entityType, entityKey)
    const stored = this.#store.get(partition, key)
    if (stored === undefined) return []
    this.#store.delete(partition, key)
    return decodeChunkSet(stored).map((e) => e.id)
  }
}
