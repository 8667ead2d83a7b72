/**
 * The subject index of one govern node: which entities each subject's rows produced (so a deletion
 * request finds them) and, per entity, its subjects, classification and chunk content hashes (so a
 * row change can leave its former subjects, RECLASSIFIED can compare, and forgetting can uncache).
 */
import type { StateStore } from '../../state/store.ts'
import { decodeJson, encodeJson } from '../../topology/json.ts'

/* Subject index store, two kinds of keys per partition (JSON values):
 *   s:<subject hash>  → [[entity key, source time ms], …]   the entities indexed for the subject
 *   e:<entity key>    → {"s": [subject hash, …], "c": classification, "t": source time ms, "h"?: [chunk content hash, …]}
 * Only hashes and entity keys, never subjects. */
export interface EntityEntry {
  readonly s: readonly string[]
  readonly c: string
  readonly t: number
  /** Content hashes of its chunk texts (only with `forget.embeddingCache`). */
  readonly h?: readonly string[]
  /** The reason the entity is denied now (so a re-trigger of the same denial writes no second audit event). */
  readonly d?: string
}

/** The batch's view of the subject index: parsed once, written once at the end of `process`. */
export class SubjectIndex {
  readonly #store: StateStore
  readonly #lists = new Map<string, { partition: number; key: string; entities: Map<string, number>; dirty: boolean }>()
  readonly #entities = new Map<
    string,
    { partition: number; key: string; entry: EntityEntry | undefined; dirty: boolean }
  >()
  removed = 0

  constructor(store: StateStore) {
    this.#store = store
  }

  subject(partition: number, hash: string): Map<string, number> {
    return this.#list(partition, hash).entities
  }

  #list(partition: number, hash: string) {
    const id = `${partition}\u0000${hash}`
    let list = this.#lists.get(id)
    if (list === undefined) {
      const bytes = this.#store.get(partition, `s:${hash}`)
      const entities = new Map<string, number>(bytes === undefined ? [] : (decodeJson(bytes) as [string, number][]))
      this.#lists.set(id, (list = { partition, key: `s:${hash}`, entities, dirty: false }))
    }
    return list
  }

  #entity(partition: number, key: string) {
    const id = `${partition}\u0000${key}`
    let slot = this.#entities.get(id)
    if (slot === undefined) {
      const bytes = this.#store.get(partition, `e:${key}`)
      this.#entities.set(
        id,
        (slot = {
          partition,
          key: `e:${key}`,
          entry: bytes === undefined ? undefined : (decodeJson(bytes) as EntityEntry),
          dirty: false,
        }),
      )
    }
    return slot
  }

  entity(partition: number, key: string): EntityEntry | undefined {
    return this.#entity(partition, key).entry
  }

  /** Removes one entity from one subject's list (when its own entry is missing or lists other subjects). */
  drop(partition: number, hash: string, key: string): void {
    const list = this.#list(partition, hash)
    if (list.entities.delete(key)) list.dirty = true
  }

  /** The entity leaves the index (its subjects' lists and its own entry). */
  unindex(partition: number, key: string): void {
    const slot = this.#entity(partition, key)
    if (slot.entry === undefined) return
    for (const hash of slot.entry.s) {
      const list = this.#list(partition, hash)
      if (list.entities.delete(key)) list.dirty = true
    }
    slot.entry = undefined
    slot.dirty = true
  }

  index(
    partition: number,
    key: string,
    hashes: readonly string[],
    classification: string,
    timestamp: number,
    contentHashes: readonly string[] | undefined,
    denied?: string,
  ): void {
    const slot = this.#entity(partition, key)
    const next = new Set(hashes)
    for (const hash of slot.entry?.s ?? []) {
      if (next.has(hash)) continue
      const list = this.#list(partition, hash)
      if (list.entities.delete(key)) list.dirty = true
    }
    for (const hash of next) {
      const list = this.#list(partition, hash)
      if (list.entities.get(key) !== timestamp) {
        list.entities.set(key, timestamp)
        list.dirty = true
      }
    }
    slot.entry = {
      s: [...next],
      c: classification,
      t: timestamp,
      ...(contentHashes === undefined ? {} : { h: contentHashes }),
      ...(denied === undefined ? {} : { d: denied }),
    }
    slot.dirty = true
  }

  flush(): void {
    for (const list of this.#lists.values()) {
      if (!list.dirty) continue
      if (list.entities.size === 0) {
        this.#store.delete(list.partition, list.key)
        this.removed++
      } else this.#store.put(list.partition, list.key, encodeJson([...list.entities]))
    }
    for (const slot of this.#entities.values()) {
      if (!slot.dirty) continue
      if (slot.entry === undefined) this.#store.delete(slot.partition, slot.key)
      else this.#store.put(slot.partition, slot.key, encodeJson(slot.entry))
    }
  }
}
