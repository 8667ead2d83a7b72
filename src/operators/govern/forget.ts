/**
 * Forgetting, govern's anti-join on the write side: one deletion request applied on this task's
 * partition (step 3 of a batch, before any row change). It writes the subject's suppression record
 * (never a null), removes the subject's entities from the subject index, from the stores on govern's
 * input and from every join's subscription index (an unsubscribe, as a left delete sends), deletes
 * the subject's keys from subject-keyed stores (FOREVER only), marks the chunks' vectors for
 * uncaching, and returns the deletes downstream and one DELETION_APPLIED audit event. Which stores
 * are covered is decided by the graph (./coverage.ts); later rows of the subject are stopped by the
 * suppression, here and where they enter (src/operators/table-source.ts).
 */
import { decodeChunkSet } from '../../chunking/chunk-set.ts'
import { deletionAppliedAudit } from '../../governance/forget/deletion-audit.ts'
import type { DeletionRequestValue } from '../../governance/forget/deletion-request.ts'
import {
  encodeSuppression,
  mergeSuppression,
  suppresses,
  suppressionFromRequest,
  type SuppressionRecord,
} from '../../governance/forget/suppression.ts'
import { hashSubject } from '../../governance/subject.ts'
import { groupPrefix, memberOf, type StateStore } from '../../state/store.ts'
import type { StageContext, StageRow } from '../../topology/graph.ts'
import { partitionForString } from '../../topology/partitioner.ts'
import { subscriptionBytes, UNSUBSCRIBE } from '../fk-join/wire.ts'
import { AuditRecord, InternalRecord } from './items.ts'
import type { GovernPlan } from './plan.ts'
import type { SubjectIndex } from './subject-index.ts'

/** What applying a request touches of its batch. */
export interface ForgetScope {
  readonly plan: GovernPlan
  readonly context: StageContext
  readonly index: SubjectIndex
  readonly forgotten: StateStore
  /** The subject's suppression as the batch sees it. */
  suppressionOf(partition: number, hash: string): SuppressionRecord | undefined
  /** Records the new suppression in the batch's view (later rows of the batch see it). */
  suppress(partition: number, hash: string, record: SuppressionRecord): void
  /** Content hashes whose cached vectors the batch deletes when it finishes. */
  readonly uncache: Set<string>
}

export function applyDeletionRequest(
  scope: ForgetScope,
  partition: number,
  request: DeletionRequestValue,
): { rows: StageRow[]; entitiesForgotten: number } {
  const { plan, context, index } = scope
  let entitiesForgotten = 0
  const { mode, entityStores, subjectStores, chunkSets, indexStore: indexName } = plan
  const hash = hashSubject(request.subject)
  const next = mergeSuppression(scope.suppressionOf(partition, hash), suppressionFromRequest(request, mode))
  scope.forgotten.put(partition, hash, encodeSuppression(next)) // never a null: compaction must keep it
  scope.suppress(partition, hash, next)
  const out: StageRow[] = []
  const removed: Record<string, number> = {}
  const count = (store: string): void => {
    removed[store] = (removed[store] ?? 0) + 1
  }
  const uncache = new Set<string>()
  let chunks = 0
  for (const [entity, timestamp] of [...index.subject(partition, hash)]) {
    if (!suppresses(next, timestamp)) continue
    for (const contentHash of index.entity(partition, entity)?.h ?? []) uncache.add(contentHash)
    index.unindex(partition, entity)
    index.drop(partition, hash, entity)
    count(indexName)
    for (const set of chunkSets) {
      const bytes = context.store(set.store).get(partition, `${set.entityType}:${entity}`)
      if (bytes !== undefined) chunks += decodeChunkSet(bytes).length
    }
    out.push(...unsubscribes(plan, context, partition, entity))
    for (const name of entityStores) {
      const store = context.store(name)
      if (store.get(partition, entity) === undefined) continue
      store.delete(partition, entity)
      count(name)
    }
    out.push({ key: entity, value: null })
    entitiesForgotten++
  }
  // Rows keyed by the subject itself (its metadata row, a join's reverse index) go only when the
  // subject is forgotten for good: under BEFORE_REQUEST its later entities stay indexed and still need them.
  for (const [name, keyOf] of next.mode === 'FOREVER' ? subjectStores : []) {
    const key = keyOf(request.subject)
    if (typeof key !== 'string') continue
    const store = context.store(name)
    for (const [grouped] of store.scan(partition, groupPrefix(key))) {
      store.delete(partition, grouped)
      count(name)
    }
    if (store.get(partition, key) === undefined) continue
    store.delete(partition, key)
    count(name)
  }
  // The subject's contributions to aggregates: each row goes back to its table's task, which deletes
  // it as a delete would (src/operators/table-source.ts), so every aggregate subtracts it and the
  // parents are re-emitted without it; the suppression travels along (a row changed since stays).
  const suppression = encodeSuppression(next)
  for (const c of plan.contributions) {
    const prefix = groupPrefix(hash)
    for (const [entry] of context.store(c.index).scan(partition, prefix)) {
      const row = memberOf(prefix, entry)
      out.push({ key: row, value: new InternalRecord(c.topic, partition, Buffer.from(row, 'utf8'), suppression) })
      count(c.table)
    }
  }
  if (uncache.size > 0) removed['embedding-cache'] = uncache.size
  for (const contentHash of uncache) scope.uncache.add(contentHash)
  const applied = deletionAppliedAudit({
    topology: plan.app,
    topologyVersion: plan.topologyVersion,
    requestId: request.request_id,
    subjectHash: hash,
    partition,
    chunksTombstoned: chunks,
    storeKeysRemoved: removed,
    atMs: context.now,
  })
  out.push({
    key: applied.event_id,
    value: new AuditRecord({ ...applied, counts: { ...applied.counts, partitions: plan.partitions } }),
  })
  return { rows: out, entitiesForgotten }
}

/**
 * The unsubscribes a left delete of `entity` would send each join on govern's input (KIP-213's
 * subscription protocol), so the right owners' subscription indexes drop the forgotten key: its
 * store rows go straight away, and the joins would never see them leave.
 */
export function unsubscribes(plan: GovernPlan, context: StageContext, partition: number, entity: string): StageRow[] {
  const rows: StageRow[] = []
  for (const join of plan.spineJoins) {
    const bytes = context.store(join.leftStore).get(partition, entity)
    if (bytes === undefined) continue
    let fk: string | null | undefined
    try {
      fk = join.foreignKey(JSON.parse(bytes.toString('utf8')))
    } catch {
      continue // the join could not have subscribed with it either
    }
    if (typeof fk !== 'string') continue
    const record = new InternalRecord(
      join.subscriptionTopic,
      partitionForString(fk, plan.partitions),
      Buffer.from(fk, 'utf8'),
      subscriptionBytes(UNSUBSCRIBE, entity, partition, null),
    )
    rows.push({ key: fk, value: record })
  }
  return rows
}
