/**
 * The subject index of one govern node: which entities each subject's rows produced (so a deletion
 * request finds them) and, per entity, its subjects, classification and chunk content hashes (so a
 * row change can leave its former subjects, RECLASSIFIED can compare, and forgetting can uncache).
 */
import { groupPrefix, groupedKey, memberOf, type StateStore } from '../../state/store.ts'
import { decodeJson, encodeJson } from '../../topology/json.ts'

/* Subject index store, two kinds of keys per partition:
 *   groupedKey(s:<subject hash>, entity key) → source time ms (decimal)   one entry per (subject, entity)
 *   e:<entity key>    → JSON {"s": [subject hash, …], "c": classification, "t": source time ms, "h"?: [chunk content hash, …]}
 * Only hashes and entity keys, never subjects. A subject's entities are read with one prefix scan
 * (`subjectPrefix`) when a deletion request names it; a row change writes only its own entries, so no
 * value grows with the rows that share a subject (a customer with 100,000 tickets).
 * Earlier versions kept one JSON list per subject under `s:<subject hash>` ([[entity key, time], …]);
 * such a list is migrated to entries the first time its subject is touched (the key stays in every
 * prefetch for that). */

/** The key whose grouped entries list a subject's entities (and, in the earlier layout, its list). */
export function subjectKey(hash: string): string {
  return `s:${hash}`
}

/** The scan prefix of a subject's entities. */
export function subjectPrefix(hash: string): string {
  return groupPrefix(subjectKey(hash))
}

/** The entry of one (subject, entity) pair. */
export function subjectEntryKey(hash: string, entity: string): string {
  return groupedKey(subjectKey(hash), entity)
}
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
  readonly #entities = new Map<
    string,
    { partition: number; key: string; entry: EntityEntry | undefined; dirty: boolean }
  >()
  removed = 0

  constructor(store: StateStore) {
    this.#store = store
  }

  /** The entities indexed for a subject, with their source times (its prefix must be prefetched). */
  subject(partition: number, hash: string): Map<string, number> {
    this.#migrate(partition, hash)
    const prefix = subjectPrefix(hash)
    const entities = new Map<string, number>()
    for (const [key, bytes] of this.#store.scan(partition, prefix))
      entities.set(memberOf(prefix, key), Number(bytes.toString('latin1')))
    return entities
  }

  /** A subject's list in the earlier layout becomes one entry per entity, the list is deleted. */
  #migrate(partition: number, hash: string): void {
    const legacy = this.#store.get(partition, subjectKey(hash))
    if (legacy === undefined) return
    for (const [entity, timestamp] of decodeJson(legacy) as [string, number][])
      this.#store.put(partition, subjectEntryKey(hash, entity), Buffer.from(String(timestamp), 'latin1'))
    this.#store.delete(partition, subjectKey(hash))
  }

  #set(partition: number, hash: string, key: string, timestamp: number): void {
    this.#migrate(partition, hash)
    const entry = subjectEntryKey(hash, key)
    const bytes = Buffer.from(String(timestamp), 'latin1')
    if (!this.#store.get(partition, entry)?.equals(bytes)) this.#store.put(partition, entry, bytes)
  }

  #delete(partition: number, hash: string, key: string): void {
    this.#migrate(partition, hash)
    const entry = subjectEntryKey(hash, key)
    if (this.#store.get(partition, entry) === undefined) return
    this.#store.delete(partition, entry)
    this.removed++
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

  /** Removes one entity from one subject's entries (when its own entry is missing or lists other subjects). */
  drop(partition: number, hash: string, key: string): void {
    this.#delete(partition, hash, key)
  }

  /** The entity leaves the index (its subjects' entries and its own entry). */
  unindex(partition: number, key: string): void {
    const slot = this.#entity(partition, key)
    if (slot.entry === undefined) return
    for (const hash of slot.entry.s) this.#delete(partition, hash, key)
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
    for (const hash of slot.entry?.s ?? []) if (!next.has(hash)) this.#delete(partition, hash, key)
    for (const hash of next) this.#set(partition, hash, key, timestamp)
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
    for (const slot of this.#entities.values()) {
      if (!slot.dirty) continue
      if (slot.entry === undefined) this.#store.delete(slot.partition, slot.key)
      else this.#store.put(slot.partition, slot.key, encodeJson(slot.entry))
    }
  }
}
