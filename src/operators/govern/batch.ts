/**
 * One batch of the govern stage, in the order its guarantees need (see ./index.ts):
 *
 *   1. decode     deletion requests and each row's document, joined rows and subjects (user code:
 *                 a throw is that item's dead letter, never the batch's failure);
 *   2. prefetch   every store key the batch will read, in three dependent rounds (requests' and
 *                 rows' subjects → the entities a request removes and the rows' former subjects →
 *                 the other subjects of the removed entities);
 *   3. apply requests   every deletion request before any row change, so a request and an update
 *                 racing in one batch end in suppression whichever came first;
 *   4. apply rows in input order: suppressed, denied or deleted rows become deletes, the others the
 *                 governed (redacted) document, with their audit events;
 *   5. finish     write the subject index once, report counts, uncache forgotten chunks' vectors.
 *
 * Synchronous from step 3 on: the steps read only what step 2 prefetched.
 */
import type { RowLineage } from '../../cdc/table-decoder.ts'
import { RagstreamError } from '../../errors.ts'
import type { DeletionRequestValue } from '../../governance/forget/deletion-request.ts'
import { decodeSuppression, findSuppression, type SuppressionRecord } from '../../governance/forget/suppression.ts'
import type { GovernRecord, JoinedMetadata } from '../../governance/policy.ts'
import { hashSubject } from '../../governance/subject.ts'
import { report, telemetryActive } from '../../observability/telemetry.ts'
import { groupPrefix, type StateStore } from '../../state/store.ts'
import type { StageContext, StageItem, StageResult, StageRow } from '../../topology/graph.ts'
import { checkRequest } from './deletion-requests.ts'
import { applyDeletionRequest, type ForgetScope } from './forget.ts'
import { AuditRecord, EntityChange, ForgetCopy } from './items.ts'
import type { ForgetOptions, GovernBatchMetrics, GovernDocumentInput, GovernedDocument } from './options.ts'
import type { GovernPlan } from './plan.ts'
import { PrefetchRound } from './prefetch-round.ts'
import { SubjectIndex, subjectEntryKey, subjectKey, subjectPrefix } from './subject-index.ts'

/** A row decided in step 1: the policy's input and its subjects. */
interface DecodedRow {
  readonly record: GovernRecord
  readonly joined: JoinedMetadata
  readonly subjects: readonly string[]
  readonly hashes: readonly string[]
  readonly tenant: string | null
  readonly source: RowLineage | undefined
}

/** A user function's throw: the record's failure, without the thrown message (it may quote the row). */
function userFailure(node: string, what: string, error: unknown): RagstreamError {
  if (error instanceof RagstreamError) return error
  return new RagstreamError(
    'RS_RECORD_INVALID',
    `govern: ${what} threw ${error instanceof Error ? error.name : typeof error}`,
    { context: { node } },
  )
}

export class GovernBatch {
  readonly #plan: GovernPlan
  readonly #items: readonly StageItem[]
  readonly #context: StageContext
  readonly #forgotten: StateStore | undefined
  readonly #indexStore: StateStore
  readonly #index: SubjectIndex
  readonly #results: (StageResult | undefined)[]
  readonly #requests = new Map<number, DeletionRequestValue>()
  readonly #rows = new Map<number, DecodedRow>()
  /** Suppressions as the batch sees them (requests applied first); keyed `<partition>\0<subject hash>`. */
  readonly #suppressions = new Map<string, SuppressionRecord | undefined>()
  /** Content hashes of forgotten entities' chunks, for the embedding cache. */
  readonly #uncache = new Set<string>()
  readonly #metrics: { -readonly [K in keyof GovernBatchMetrics]: GovernBatchMetrics[K] } & {
    redactions: Record<string, number>
  }

  constructor(plan: GovernPlan, items: readonly StageItem[], context: StageContext) {
    this.#plan = plan
    this.#items = items
    this.#context = context
    // Without forget there are no requests (no broadcast topic) and nothing is suppressed.
    this.#forgotten = plan.forgottenStore === undefined ? undefined : context.store(plan.forgottenStore)
    this.#indexStore = context.store(plan.indexStore)
    this.#index = new SubjectIndex(this.#indexStore)
    this.#results = new Array(items.length)
    this.#metrics = {
      emitted: 0,
      denied: 0,
      suppressed: 0,
      deleted: 0,
      requestsApplied: 0,
      entitiesForgotten: 0,
      redactions: {},
    }
  }

  /** The batch's results, one per item, in item order. */
  async run(): Promise<StageResult[]> {
    await this.#plan.services?.open()
    await this.#plan.audit.open?.()
    await this.decode()
    await this.prefetch()
    this.applyRequests()
    this.applyRows()
    await this.finish()
    return this.#results as StageResult[]
  }

  /** Step 1: requests and rows decoded, subjects computed; failures become the item's dead letter. */
  async decode(): Promise<void> {
    const { decoder, name } = this.#plan
    const copies = this.#items.flatMap((item, i) => (item.value instanceof ForgetCopy ? [i] : []))
    if (copies.length > 0) {
      await decoder.open?.()
      await decoder.prepare?.(copies.map((i) => (this.#items[i].value as ForgetCopy).bytes))
    }
    for (const i of copies) {
      try {
        const request = decoder.decode((this.#items[i].value as ForgetCopy).bytes)
        if (request === null) this.#results[i] = []
        else this.#requests.set(i, checkRequest(request))
      } catch (error) {
        this.#results[i] = {
          error:
            error instanceof RagstreamError
              ? error
              : new RagstreamError('RS_DECODE_FAILED', 'undecodable deletion request', {
                  cause: error,
                  context: { node: name },
                }),
        }
      }
    }
    this.#items.forEach((item, i) => {
      if (!(item.value instanceof EntityChange) || item.value.value === null || item.value.value === undefined) return
      try {
        this.#rows.set(i, this.#decodeRow(item.key, item.value))
      } catch (error) {
        this.#results[i] = { error }
      }
    })
  }

  #decodeRow(key: string, change: EntityChange): DecodedRow {
    const { options, policy, name } = this.#plan
    const value = change.value
    let doc: GovernDocumentInput
    let joined: JoinedMetadata
    let tenant: string | null
    try {
      doc = options.document(value, key)
      joined = options.joined?.(value, key) ?? {}
      tenant = options.tenant?.(value, key) ?? null
    } catch (error) {
      throw userFailure(name, 'document, joined or tenant', error)
    }
    if (doc === null || typeof doc !== 'object' || typeof doc.text !== 'string')
      throw new RagstreamError('RS_RECORD_INVALID', 'govern: document must return { text: string, … }', {
        context: { node: name },
      })
    const source = (value as { _source?: RowLineage })._source
    const timestampMs = doc.timestampMs ?? source?.timestampMs ?? change.timestamp
    const record: GovernRecord = { key, text: doc.text, metadata: doc.metadata ?? {}, timestampMs }
    const subjects = policy.subjects(record, joined)
    return { record, joined, subjects, hashes: subjects.map(hashSubject), tenant, source }
  }

  /** The row changes still to decide (not failed in step 1), with their index. */
  #pendingChanges(): [number, StageItem][] {
    const pending: [number, StageItem][] = []
    this.#items.forEach((item, i) => {
      if (item.value instanceof EntityChange && this.#results[i] === undefined) pending.push([i, item])
    })
    return pending
  }

  /** Step 2: every key steps 3-5 read, in three rounds (each round's keys depend on the previous one's values). */
  async prefetch(): Promise<void> {
    const { entityStores, chunkSets, subjectStores } = this.#plan
    const index = this.#index
    const indexStore = this.#indexStore
    const forgotten = this.#forgotten
    const round = new PrefetchRound()
    const changes = this.#pendingChanges()

    // Round 1: suppressions and subject lists of requests and rows; the rows' index entries.
    for (const [i, request] of this.#requests) {
      const hash = hashSubject(request.subject)
      round.add(forgotten!, this.#items[i].partition, hash)
      round.add(indexStore, this.#items[i].partition, subjectKey(hash))
      round.addPrefix(indexStore, this.#items[i].partition, subjectPrefix(hash))
      for (const c of this.#plan.contributions)
        round.addPrefix(this.#context.store(c.index), this.#items[i].partition, groupPrefix(hash))
    }
    for (const [i, item] of changes) {
      round.add(indexStore, item.partition, `e:${item.key}`)
      for (const hash of this.#rows.get(i)?.hashes ?? []) {
        if (forgotten !== undefined) round.add(forgotten, item.partition, hash)
        round.add(indexStore, item.partition, subjectKey(hash))
        round.add(indexStore, item.partition, subjectEntryKey(hash, item.key))
      }
    }
    await round.load()

    // Round 2: what the requests will remove, and the rows' former subjects.
    for (const [i, request] of this.#requests) {
      const partition = this.#items[i].partition
      for (const entity of index.subject(partition, hashSubject(request.subject)).keys()) {
        round.add(indexStore, partition, `e:${entity}`)
        for (const store of entityStores) round.add(this.#context.store(store), partition, entity)
        for (const set of chunkSets) round.add(this.#context.store(set.store), partition, `${set.entityType}:${entity}`)
      }
      for (const [store, keyOf] of subjectStores) {
        const key = keyOf(request.subject)
        if (typeof key !== 'string') continue
        round.add(this.#context.store(store), partition, key)
        // Entries grouped under the key (a join's subscriptions: one per left row) go with it.
        round.addPrefix(this.#context.store(store), partition, groupPrefix(key))
      }
    }
    const requested = new Set([...this.#requests.values()].map((r) => hashSubject(r.subject)))
    for (const [i, item] of changes) {
      for (const hash of index.entity(item.partition, item.key)?.s ?? []) {
        round.add(indexStore, item.partition, subjectKey(hash))
        round.add(indexStore, item.partition, subjectEntryKey(hash, item.key))
      }
      // A row that will be suppressed leaves the entity stores too (it may have entered them in this very batch).
      const hashes = this.#rows.get(i)?.hashes ?? []
      if (hashes.some((h) => requested.has(h) || forgotten?.get(item.partition, h) !== undefined))
        for (const store of entityStores) round.add(this.#context.store(store), item.partition, item.key)
    }
    await round.load()

    // Round 3: the other subjects of the entities the requests remove.
    for (const [i, request] of this.#requests) {
      const partition = this.#items[i].partition
      for (const entity of index.subject(partition, hashSubject(request.subject)).keys())
        for (const hash of index.entity(partition, entity)?.s ?? []) {
          round.add(indexStore, partition, subjectKey(hash))
          round.add(indexStore, partition, subjectEntryKey(hash, entity))
        }
    }
    await round.load()
  }

  #suppressionOf(partition: number, hash: string): SuppressionRecord | undefined {
    if (this.#forgotten === undefined) return undefined
    const id = `${partition}\u0000${hash}`
    if (!this.#suppressions.has(id)) {
      const bytes = this.#forgotten.get(partition, hash)
      this.#suppressions.set(id, bytes === undefined ? undefined : decodeSuppression(bytes))
    }
    return this.#suppressions.get(id)
  }

  /** Step 3: every deletion request of the batch, before any row change. */
  applyRequests(): void {
    const scope: ForgetScope = {
      plan: this.#plan,
      context: this.#context,
      index: this.#index,
      forgotten: this.#forgotten!,
      suppressionOf: (partition, hash) => this.#suppressionOf(partition, hash),
      suppress: (partition, hash, record) => this.#suppressions.set(`${partition}\u0000${hash}`, record),
      uncache: this.#uncache,
    }
    for (const [i, request] of this.#requests) {
      const applied = applyDeletionRequest(scope, this.#items[i].partition, request)
      this.#results[i] = applied.rows
      this.#metrics.entitiesForgotten += applied.entitiesForgotten
    }
    this.#metrics.requestsApplied = this.#requests.size
  }

  /** Step 4: row changes in input order. */
  applyRows(): void {
    for (const [i, item] of this.#pendingChanges()) this.#results[i] = this.#applyRow(item, this.#rows.get(i))
  }

  #applyRow(item: StageItem, decided: DecodedRow | undefined): StageResult {
    const { policy, embeddingCache, name } = this.#plan
    const index = this.#index
    const metrics = this.#metrics
    const { partition, key } = item
    const before = index.entity(partition, key)
    if (decided === undefined) {
      index.unindex(partition, key)
      metrics.deleted++
      return [{ key, value: null }]
    }
    const { record, joined, subjects, hashes } = decided
    if (findSuppression(hashes, record.timestampMs, (h) => this.#suppressionOf(partition, h)) !== undefined) {
      index.unindex(partition, key)
      for (const name of this.#plan.entityStores) {
        const store = this.#context.store(name)
        if (store.get(partition, key) !== undefined) store.delete(partition, key)
      }
      metrics.suppressed++
      return [{ key, value: null }]
    }
    let decision
    try {
      decision = policy.govern(record, joined, subjects)
    } catch (error) {
      return { error }
    }
    if (decision.action === 'deny') {
      // Still indexed under its subjects (a forget must find it, and uncache its former chunks), marked
      // denied: a re-trigger of the same denial (its customer changed, say) writes no second DENIED.
      index.index(partition, key, hashes, before?.c ?? '', record.timestampMs, before?.h, decision.reason)
      metrics.denied++
      if (before?.d === decision.reason) return [{ key, value: null }]
      return [
        { key, value: null },
        { key: decision.audit.event_id, value: new AuditRecord(decision.audit) },
      ]
    }
    const governed: GovernedDocument = {
      text: decision.text,
      metadata: decision.metadata,
      classification: decision.classification,
      region: decision.region,
      tenant: decided.tenant,
      subjects: decision.subjects,
      policy_version: decision.policyVersion,
      ...(decided.source === undefined ? {} : { _source: decided.source }),
    }
    let contentHashes: readonly string[] | undefined
    if (embeddingCache !== undefined) {
      try {
        contentHashes = [...embeddingCache.contentHashes(governed, key)]
      } catch (error) {
        return { error: userFailure(name, 'forget.embeddingCache.contentHashes', error) }
      }
    }
    metrics.emitted++
    for (const detector in decision.redactionCounts)
      metrics.redactions[detector] = (metrics.redactions[detector] ?? 0) + decision.redactionCounts[detector]
    const out: StageRow[] = [{ key, value: governed }]
    const redacted = policy.redactionAudit(record, decision)
    if (redacted !== undefined) out.push({ key: redacted.event_id, value: new AuditRecord(redacted) })
    if (before !== undefined && before.d === undefined && before.c !== decision.classification) {
      const reclassified = policy.reclassificationAudit(record, subjects, before.c, decision.classification)
      out.push({ key: reclassified.event_id, value: new AuditRecord(reclassified) })
    }
    index.index(partition, key, hashes, decision.classification, record.timestampMs, contentHashes)
    return out
  }

  /** Step 5: the subject index written once, counts reported, forgotten chunks' vectors uncached. */
  async finish(): Promise<void> {
    this.#index.flush()
    this.#plan.options.observe?.(this.#metrics)
    if (telemetryActive()) report({ kind: 'govern', node: this.#plan.name, ...this.#metrics })
    // The cache is not transactional: deleting before the commit is safe (an aborted batch only
    // costs re-embedding), deleting after it could be skipped by a crash.
    const cache = this.#plan.embeddingCache
    if (cache !== undefined && this.#uncache.size > 0) await uncache(cache, [...this.#uncache])
  }
}

async function uncache(cache: NonNullable<ForgetOptions['embeddingCache']>, hashes: string[]): Promise<void> {
  const namespace = typeof cache.namespace === 'function' ? cache.namespace() : cache.namespace
  await cache.cache.delete(namespace, hashes)
}
