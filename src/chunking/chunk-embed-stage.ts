/**
 * The chunk → diff → embed stage as one batched processor, for the DSL's `stage(...)`: per batch it
 * prefetches the chunk sets of the batch's entities (one round trip), chunks every changed entity,
 * diffs against the stored chunk set, embeds only the new or changed chunks (one Embedder call for
 * the whole batch: cache lookup, batching, budget), and returns per entity the chunk events to emit —
 * upserts first, then tombstones — keyed by chunk id and partitioned by entity key.
 *
 * @example
 * documents.stage({
 *   name: 'chunk', kind: 'chunk+embed', stores: ['chunk-sets'],
 *   processor: chunkEmbedStage({ topology: 'support', version: 'v1', entityType: 'ticket', store: 'chunk-sets',
 *     chunker, embedder, text: (t) => t.body, metadata: (t) => ({ subject: t.subject }) }),
 * }).to('rag.chunks.support', { encode: chunkEventEncoder(avroCodec) })
 */
import type { RowLineage } from '../cdc/table-decoder.ts'
import { LINEAGE_FIELD } from '../cdc/table-decoder.ts'
import type { Embedder } from '../embedding/embedder.ts'
import { vectorFromField, type PrecomputedEmbeddingConfig } from '../embedding/precomputed.ts'
import type { ChunkChange, ChunkEvent, ChunkLineage } from '../serde/chunk-event.ts'
import type { StateStore } from '../state/store.ts'
import { RagstreamError } from '../errors.ts'
import { chunkFingerprint } from './chunk-id.ts'
import { ChunkSetStore } from './chunk-set.ts'
import type { Chunk, Chunker } from './chunker.ts'
import type { TemplateFields } from './template.ts'

/** Governance fields of a chunk event (filled by the govern stage upstream). */
export interface ChunkGovernance {
  readonly classification?: string | null
  readonly tenant?: string | null
  readonly region?: string | null
  readonly subjects?: readonly string[]
  readonly policy_version?: string | null
}

export interface ChunkEmbedStageOptions<V> {
  readonly topology: string
  readonly version: string
  readonly entityType: string
  /** The chunk-set store; the stage must declare it in `stores`. */
  readonly store: string
  readonly chunker: Chunker
  /** An Embedder, or `{ precomputed }` to take vectors from a field (one vector per entity, for single-chunk entities). */
  readonly embedder: Embedder | { readonly precomputed: PrecomputedEmbeddingConfig }
  /** The text to chunk. */
  readonly text: (value: V, key: string) => string
  /** Template placeholders; default: the row itself. */
  readonly fields?: (value: V, key: string) => TemplateFields
  /** Metadata stored with each chunk (JSON); default `{}`. */
  readonly metadata?: (value: V, key: string) => Readonly<Record<string, unknown>>
  readonly governance?: (value: V, key: string) => ChunkGovernance
  /** Where the row came from; default the `_source` field set by cdcTableDecoder. */
  readonly lineage?: (value: V, key: string) => RowLineage | undefined
}

/** Structurally the DSL's StageItem / StageContext / StageResult. */
export interface ChunkStageItem {
  readonly key: string
  readonly value: unknown
  readonly oldValue: unknown
  readonly partition: number
  readonly timestamp?: number
  readonly appendedAt?: number
  readonly origin?: { readonly topic: string; readonly partition: number; readonly offset: bigint }
}

/**
 * The change that made this version: the item's origin, at the item's event time and append time
 * (null when the runtime gave neither; the append time null when unknown).
 */
function changeOf(item: ChunkStageItem): ChunkChange | null {
  const { origin, timestamp, appendedAt } = item
  if (origin === undefined || timestamp === undefined) return null
  return {
    topic: origin.topic,
    partition: origin.partition,
    offset: Number(origin.offset),
    timestamp_ms: timestamp,
    appended_at_ms: appendedAt !== undefined && appendedAt >= 0 ? appendedAt : null,
  }
}
export interface ChunkStageContext {
  store(name: string): StateStore
  readonly now: number
}
export type ChunkStageResult =
  readonly { key: string; value: ChunkEvent | null; partitionKey: string }[] | { error: unknown }

interface Planned {
  readonly item: ChunkStageItem
  readonly upserts: (Chunk & { fingerprint: string })[]
  readonly tombstones: string[]
  readonly base?: Omit<ChunkEvent, 'chunk_id' | 'chunk_index' | 'text' | 'embedding' | 'content_hash'>
  readonly vector?: Float32Array
}

export function chunkEmbedStage<V>(options: ChunkEmbedStageOptions<V>): {
  process(items: readonly ChunkStageItem[], context: ChunkStageContext): Promise<ChunkStageResult[]>
  prefetchAhead(items: readonly { key: string; partition: number }[], context: ChunkStageContext): Promise<void>
} {
  const { topology, version, entityType, chunker } = options
  const embedder = 'precomputed' in options.embedder ? undefined : options.embedder
  const precomputed = 'precomputed' in options.embedder ? options.embedder.precomputed : undefined
  const embeddingModel = embedder
    ? embedder.model
    : `${precomputed?.model ?? `precomputed:${precomputed?.field}`}@${precomputed?.dimensions}`
  const lineageOf =
    options.lineage ?? ((value: V) => (value as Record<string, unknown>)[LINEAGE_FIELD] as RowLineage | undefined)

  /** The chunk sets of these entities, one round trip (keys already loaded in this batch are skipped). */
  const prefetchChunkSets = async (
    items: readonly { key: string; partition: number }[],
    state: StateStore,
  ): Promise<void> => {
    const keysByPartition = new Map<number, Set<string>>()
    for (const item of items) {
      let keys = keysByPartition.get(item.partition)
      if (keys === undefined) keysByPartition.set(item.partition, (keys = new Set()))
      keys.add(ChunkSetStore.keyOf(entityType, item.key))
    }
    await Promise.all([...keysByPartition].map(([partition, keys]) => state.prefetch(partition, keys)))
  }

  return {
    prefetchAhead: (items, context) => prefetchChunkSets(items, context.store(options.store)),
    async process(items, context) {
      const state = context.store(options.store)
      const chunkSets = new ChunkSetStore(state)
      await prefetchChunkSets(items, state)

      const plans: (Planned | { error: unknown })[] = items.map((item) => {
        try {
          if (item.value === null || item.value === undefined) {
            return { item, upserts: [], tombstones: chunkSets.remove(item.partition, entityType, item.key) }
          }
          const value = item.value as V
          const metadata = options.metadata?.(value, item.key) ?? {}
          const governance = options.governance?.(value, item.key) ?? {}
          const lineage = lineageOf(value, item.key)
          const vector = precomputed
            ? vectorFromField(value as Record<string, unknown>, precomputed, { node: options.store })
            : undefined
          const chunks = chunker.chunk({
            topology,
            entityType,
            entityKey: item.key,
            text: options.text(value, item.key),
            fields: options.fields?.(value, item.key) ?? (value as TemplateFields),
          })
          if (precomputed && chunks.length > 1) {
            throw new RagstreamError(
              'RS_RECORD_INVALID',
              `precomputed embeddings (field "${precomputed.field}") describe the whole entity, but its text made ${chunks.length} chunks; use the "whole" chunking strategy`,
              {
                context: { node: options.store, field: precomputed.field },
              },
            )
          }
          const emitted = {
            metadata: JSON.stringify(metadata),
            classification: governance.classification ?? null,
            tenant: governance.tenant ?? null,
            region: governance.region ?? null,
            subjects: [...(governance.subjects ?? [])],
            policy_version: governance.policy_version ?? null,
          }
          // Everything emitted besides text and lineage decides whether a chunk changed; the chunker and model too, so changing either re-emits.
          const attributes = { ...emitted, chunker: chunker.id, model: embeddingModel }
          const next = chunks.map((c) => ({ ...c, fingerprint: chunkFingerprint(c.contentHash, attributes) }))
          const { upserts, tombstones } = chunkSets.update(item.partition, entityType, item.key, next)
          const chunkLineage: ChunkLineage = {
            source_topic: lineage?.topic ?? '',
            source_partition: lineage?.partition ?? item.partition,
            source_offset: lineage ? Number(lineage.offset) : -1,
            source_timestamp_ms: lineage?.timestampMs ?? context.now,
            source_position: lineage?.position ?? null,
            source_table: lineage?.table ?? null,
            topology,
            topology_version: version,
            chunker: chunker.id,
            embedding_model: embeddingModel,
            emitted_at_ms: context.now,
            change: changeOf(item),
          }
          return {
            item,
            upserts,
            tombstones,
            base: { entity_type: entityType, entity_key: item.key, ...emitted, lineage: chunkLineage },
            vector,
          }
        } catch (error) {
          return { error }
        }
      })

      // One embedding call for the whole batch: the Embedder dedups, looks up the cache and batches.
      const toEmbed = embedder ? plans.flatMap((p) => ('upserts' in p ? p.upserts : [])) : []
      const vectors = embedder ? await embedder.embed(toEmbed) : []
      let v = 0
      return plans.map((plan): ChunkStageResult => {
        if (!('upserts' in plan)) return plan
        const rows: { key: string; value: ChunkEvent | null; partitionKey: string }[] = []
        for (const chunk of plan.upserts) {
          const embedding = embedder ? vectors[v++] : (plan.vector as Float32Array)
          rows.push({
            key: chunk.id,
            partitionKey: plan.item.key,
            value: {
              ...(plan.base as NonNullable<Planned['base']>),
              chunk_id: chunk.id,
              chunk_index: chunk.index,
              text: chunk.text,
              embedding,
              content_hash: chunk.contentHash,
            },
          })
        }
        for (const id of plan.tombstones) rows.push({ key: id, value: null, partitionKey: plan.item.key })
        return rows
      })
    },
  }
}

/** A sink encoder for chunk events: UTF-8 chunk id key, codec-encoded value (null stays a tombstone). */
export function chunkEventEncoder(codec: {
  encode(event: ChunkEvent | null): Buffer | null
}): (key: string, value: unknown) => { key: Buffer; value: Buffer | null } {
  return (key, value) => ({ key: Buffer.from(key, 'utf8'), value: codec.encode(value as ChunkEvent | null) })
}
