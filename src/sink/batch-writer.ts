/**
 * Writes one batch of chunk-topic records in ONE PostgreSQL transaction:
 *
 *   1. the offsets fence: compare-and-set of `next_offset` per topic-partition, matching both the
 *      offset this instance last read or wrote and the owner token it got when it claimed the
 *      partition. It runs first, so it also takes the row locks that serialize two instances;
 *   2. upserts (one multi-row `INSERT … SELECT FROM unnest(…) ON CONFLICT`), guarded by source
 *      position: a row is replaced only by a record with a higher chunk-topic offset, and never
 *      re-created by a record older than the tombstone that deleted it;
 *   3. deletes for tombstones (one statement), remembering each deletion's position and, for rows it
 *      removed, when and the sha256 of their subjects (the forget proof, without the subjects);
 *   4. for DELETION_APPLIED audit events, the subject's rows in every version table (forget-subjects.ts);
 *   5. audit rows and reject rows.
 *
 * A batch without audit events (nearly all of them) is ONE statement sent in ONE round trip: its
 * own implicit transaction, so its COMMIT travels with it (BEGIN / fence / upsert / COMMIT took four
 * round trips). Its first step locks the batch's offsets rows (`FOR UPDATE` returns their latest
 * committed versions, whoever wrote them after the statement's snapshot) and checks every one; the
 * offsets, rows, tombstones and rejects are written only when all passed, and the statement returns
 * the locked rows, so a fenced batch is resolved without another query. Audit events (their
 * subjects' rows are looked up first) and the per-row isolation below use an explicit transaction.
 *
 * A commit whose outcome is unknown (the connection died during COMMIT) is resolved on retry: if
 * the offsets rows already hold this instance's token and this batch's next offsets, the batch
 * committed; otherwise it did not and is written again.
 */
import { createHash } from 'node:crypto'
import type pg from 'pg'
import type { SinkNames } from './config.ts'
import { excerpt, type AuditRow, type ChunkRow, type RejectRow, type SinkEvent } from './chunk-codec.ts'
import { forgetSubjects } from './forget-subjects.ts'

export interface PartitionProgress {
  readonly partition: number
  /** What this instance last read from or wrote to the offsets row. */
  readonly expected: bigint
  /** The next offset to read after this batch. */
  readonly next: bigint
  readonly ownerToken: string
}

export interface SinkBatch {
  readonly topic: string
  readonly partitions: readonly PartitionProgress[]
  readonly upserts: readonly ChunkRow[]
  readonly tombstones: readonly { readonly chunkId: string; readonly partition: number; readonly offset: bigint }[]
  readonly audits: readonly AuditRow[]
  readonly rejects: readonly RejectRow[]
}

export type BatchOutcome =
  | {
      readonly status: 'committed'
      readonly upserted: number
      readonly deleted: number
      readonly alreadyCommitted: boolean
      /**
       * When COMMIT returned (epoch ms, this process's clock): the moment the rows became visible to
       * readers, up to the acknowledgment's trip back. Absent when an earlier attempt had committed.
       */
      readonly visibleAtMs?: number
      /** Rows PostgreSQL refused (see writeIsolating), written to sink_rejects instead. */
      readonly refused?: readonly RejectRow[]
    }
  | { readonly status: 'fenced'; readonly partitions: readonly number[] }

/**
 * Builds a batch from decoded events: per chunk id only the event at the highest offset counts
 * (one row can be touched once per statement, and later wins inside a partition anyway).
 */
export function buildBatch(
  topic: string,
  partitions: readonly PartitionProgress[],
  events: readonly SinkEvent[],
): SinkBatch {
  const last = new Map<string, SinkEvent & { kind: 'upsert' | 'tombstone' }>()
  const audits: AuditRow[] = []
  const rejects: RejectRow[] = []
  for (const event of events) {
    if (event.kind === 'audit') audits.push(event.row)
    else if (event.kind === 'reject') rejects.push(event.row)
    else {
      const id = event.kind === 'upsert' ? event.row.chunkId : event.chunkId
      const offset = event.kind === 'upsert' ? event.row.chunkOffset : event.offset
      const previous = last.get(id)
      const previousOffset =
        previous === undefined ? -1n : previous.kind === 'upsert' ? previous.row.chunkOffset : previous.offset
      if (offset > previousOffset) last.set(id, event)
    }
  }
  const upserts: ChunkRow[] = []
  const tombstones: { chunkId: string; partition: number; offset: bigint }[] = []
  for (const event of last.values()) {
    if (event.kind === 'upsert') upserts.push(event.row)
    else tombstones.push({ chunkId: event.chunkId, partition: event.partition, offset: event.offset })
  }
  // Audit event ids are deterministic, so a re-delivered event is the same row: keep the first.
  const uniqueAudits = [...new Map(audits.reverse().map((a) => [a.eventId, a])).values()].reverse()
  return { topic, partitions, upserts, tombstones, audits: uniqueAudits, rejects }
}

/**
 * An error PostgreSQL raised because of what a row holds, so writing the row again fails again:
 * data exceptions (class 22: invalid text, out of range), integrity violations (23) and program
 * limits (54: an index entry over its size limit). Never a connection, lock or server failure.
 */
export function isRowRefusal(error: unknown): boolean {
  return /^(22|23|54)/.test((error as { code?: string })?.code ?? '')
}

/** The SQL of one topology version's batch, built once per sink. */
export class BatchWriter {
  readonly #names: SinkNames
  readonly #writtenBy: string
  readonly #fenceSql: string
  readonly #upsertSql: string
  readonly #deleteSql: string
  readonly #auditSql: string
  readonly #rejectSql: string
  readonly #inspectSql: string
  /** The one-statement batch, prepared once per connection (by this name) rather than parsed and planned per batch. */
  readonly #oneStatement: { readonly name: string; readonly text: string }

  constructor(names: SinkNames, writtenBy: string) {
    this.#names = names
    this.#writtenBy = writtenBy
    const t = names.chunkTable
    const updatable = [
      'entity_type',
      'entity_key',
      'chunk_index',
      'content',
      'content_hash',
      'embedding',
      'metadata',
      'classification',
      'tenant',
      'region',
      'subjects',
      'policy_version',
      'source_topic',
      'source_partition',
      'source_offset',
      'source_position',
      'source_ts',
      'topology',
      'topology_version',
      'chunker',
      'embedding_model',
      'emitted_at',
      'chunk_topic',
      'chunk_partition',
      'chunk_offset',
      'visible_at',
      'written_by',
      'source_appended_at',
    ]
    this.#fenceSql = `
      UPDATE ${names.offsetsTable} AS o SET next_offset = v.next_offset, updated_at = clock_timestamp()
      FROM unnest($2::int[], $3::bigint[], $4::bigint[], $5::uuid[]) AS v(partition, expected, next_offset, owner_token)
      WHERE o.topic = $1 AND o.partition = v.partition AND o.next_offset = v.expected AND o.owner_token = v.owner_token
      RETURNING o.partition`
    this.#inspectSql = `SELECT partition, next_offset, owner_token FROM ${names.offsetsTable} WHERE topic = $1 AND partition = ANY($2::int[])`
    // `guard`: a condition every row must meet, besides the tombstone's (the one-statement batch's fence).
    const upsert = (guard: string) => `
      INSERT INTO ${t} (chunk_id, ${updatable.join(', ')})
      SELECT u.chunk_id, u.entity_type, u.entity_key, u.chunk_index, u.content, u.content_hash, u.embedding, u.metadata,
             u.classification, u.tenant, u.region, ARRAY(SELECT jsonb_array_elements_text(u.subjects)), u.policy_version,
             u.source_topic, u.source_partition, u.source_offset, u.source_position, to_timestamp(u.source_ts_ms / 1000.0),
             u.topology, u.topology_version, u.chunker, u.embedding_model, to_timestamp(u.emitted_at_ms / 1000.0),
             u.chunk_topic, u.chunk_partition, u.chunk_offset, clock_timestamp(), $27,
             to_timestamp(u.source_appended_at_ms / 1000.0)
      FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::vector[], $8::jsonb[],
                  $9::text[], $10::text[], $11::text[], $12::jsonb[], $13::text[], $14::text[], $15::int[], $16::bigint[],
                  $17::text[], $18::float8[], $19::text[], $20::text[], $21::text[], $22::text[], $23::float8[],
                  $24::text[], $25::int[], $26::bigint[], $28::float8[])
        AS u(chunk_id, entity_type, entity_key, chunk_index, content, content_hash, embedding, metadata,
             classification, tenant, region, subjects, policy_version, source_topic, source_partition, source_offset,
             source_position, source_ts_ms, topology, topology_version, chunker, embedding_model, emitted_at_ms,
             chunk_topic, chunk_partition, chunk_offset, source_appended_at_ms)
      WHERE ${guard}NOT EXISTS (SELECT 1 FROM ${names.tombstoneTable} d WHERE d.chunk_id = u.chunk_id AND d.chunk_offset >= u.chunk_offset)
      ON CONFLICT (chunk_id) DO UPDATE SET (${updatable.join(', ')}) = (${updatable.map((c) => `EXCLUDED.${c}`).join(', ')})
      WHERE ${t}.chunk_offset < EXCLUDED.chunk_offset`
    this.#upsertSql = upsert('')
    // The tombstones' CTEs (d: the batch's tombstones), shared with the one-statement batch.
    const deletes = `
      gone AS (DELETE FROM ${t} AS c USING d WHERE c.chunk_id = d.chunk_id AND c.chunk_offset < d.chunk_offset RETURNING c.chunk_id, c.subjects),
      marked AS (
        INSERT INTO ${names.tombstoneTable} AS m (chunk_id, chunk_offset, deleted_at, removed_at, subject_hashes)
        SELECT d.chunk_id, d.chunk_offset, clock_timestamp(),
               CASE WHEN g.chunk_id IS NULL THEN NULL ELSE clock_timestamp() END,
               coalesce(ARRAY(SELECT encode(sha256(convert_to(s, 'UTF8')), 'hex') FROM unnest(g.subjects) AS s), '{}')
        FROM d LEFT JOIN gone g ON g.chunk_id = d.chunk_id
        ON CONFLICT (chunk_id) DO UPDATE SET chunk_offset = EXCLUDED.chunk_offset, deleted_at = EXCLUDED.deleted_at,
          removed_at = coalesce(EXCLUDED.removed_at, m.removed_at),
          subject_hashes = CASE WHEN EXCLUDED.removed_at IS NULL THEN m.subject_hashes ELSE EXCLUDED.subject_hashes END
        WHERE m.chunk_offset < EXCLUDED.chunk_offset
        RETURNING 1)`
    this.#deleteSql = `
      WITH d AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS u(chunk_id, chunk_offset)),${deletes}
      SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT count(*) FROM marked)::int AS marked`
    this.#auditSql = `
      INSERT INTO ${names.auditTable} (event_id, kind, topology, topology_version, request_id, subject_hash, entity_key_hash,
                                       reason, counts, at, source_topic, source_partition, source_offset)
      SELECT event_id, kind, topology, topology_version, request_id, subject_hash, entity_key_hash, reason, counts,
             to_timestamp(at_ms / 1000.0), source_topic, source_partition, source_offset
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::jsonb[],
                  $10::float8[], $11::text[], $12::int[], $13::bigint[])
        AS u(event_id, kind, topology, topology_version, request_id, subject_hash, entity_key_hash, reason, counts, at_ms,
             source_topic, source_partition, source_offset)
      ON CONFLICT DO NOTHING`
    const reject = (guard: string) => `
      INSERT INTO ${names.rejectsTable} (topic, partition, "offset", error_code, message, record_key,
                                         source_topic, source_partition, source_offset)
      SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                           $7::text[], $8::int[], $9::bigint[]) AS r
      ${guard ? `WHERE ${guard}` : ''}
      ON CONFLICT DO NOTHING`
    this.#rejectSql = reject('')
    // One round trip for a whole batch (see the file's comment). $1 topic, $2-$5 the fence (partition,
    // expected, next, owner token), $6-$33 the upserts (the upsert's $1-$28), $34-$35 the tombstones
    // (chunk id, offset), $36-$44 the rejects (the reject's $1-$9).
    const shift = (sql: string, by: number) => sql.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + by}`)
    const passed = '(SELECT ok FROM fence)'
    const oneStatement = `
      WITH v AS (
        SELECT * FROM unnest($2::int[], $3::bigint[], $4::bigint[], $5::uuid[]) AS v(partition, expected, next_offset, owner_token)),
      locked AS MATERIALIZED (
        SELECT o.partition, o.next_offset, o.owner_token FROM ${names.offsetsTable} o
        WHERE o.topic = $1 AND o.partition = ANY($2::int[]) ORDER BY o.partition FOR UPDATE),
      fence AS MATERIALIZED (
        SELECT count(*) = cardinality($2::int[]) AS ok
        FROM locked l JOIN v ON v.partition = l.partition AND v.expected = l.next_offset AND v.owner_token = l.owner_token),
      advanced AS (
        UPDATE ${names.offsetsTable} AS o SET next_offset = v.next_offset, updated_at = clock_timestamp()
        FROM v WHERE o.topic = $1 AND o.partition = v.partition AND ${passed}
        RETURNING o.partition),
      up AS (${shift(upsert(`${passed} AND `), 5)}
        RETURNING 1),
      d AS (SELECT * FROM unnest($34::text[], $35::bigint[]) AS u(chunk_id, chunk_offset) WHERE ${passed}),${deletes},
      rejected AS (${shift(reject(passed), 35)})
      SELECT ${passed} AS ok, (SELECT count(*) FROM advanced)::int AS advanced,
             (SELECT count(*) FROM up)::int AS upserted, (SELECT count(*) FROM gone)::int AS deleted,
             CASE WHEN ${passed} THEN NULL ELSE (SELECT json_agg(json_build_object(
               'partition', partition, 'next_offset', next_offset::text, 'owner_token', owner_token)) FROM locked) END AS stored`
    const digest = createHash('sha256').update(oneStatement).digest('hex').slice(0, 24)
    this.#oneStatement = { name: `ragstream_sink_batch_${digest}`, text: oneStatement }
  }

  get names(): SinkNames {
    return this.#names
  }

  /**
   * Runs the batch's transaction on `client`. When PostgreSQL refuses a row for what it holds (see
   * isRowRefusal: a value too large for an index, an invalid value), the batch is written again with
   * each row behind a savepoint, and the refused rows go to sink_rejects: one record never stops the
   * sink, on this run or on any restart. Throws other database errors (the caller retries with a new
   * connection).
   */
  async write(client: pg.Client, batch: SinkBatch): Promise<BatchOutcome> {
    try {
      if (batch.audits.length === 0) return await this.#writeOneStatement(client, batch)
      return await this.#write(client, batch, false)
    } catch (error) {
      if (!isRowRefusal(error)) throw error
      return this.#write(client, batch, true)
    }
  }

  /** The batch as one statement, its own transaction: one round trip, COMMIT included. */
  async #writeOneStatement(client: pg.Client, batch: SinkBatch): Promise<BatchOutcome> {
    const parts = batch.partitions
    const { rejects, tombstones } = batch
    const result = await client.query<{
      ok: boolean
      advanced: number
      upserted: number
      deleted: number
      stored: { partition: number; next_offset: string; owner_token: string }[] | null
    }>({
      ...this.#oneStatement,
      values: [
        batch.topic,
        parts.map((p) => p.partition),
        parts.map((p) => p.expected.toString()),
        parts.map((p) => p.next.toString()),
        parts.map((p) => p.ownerToken),
        ...this.#upsertParams(batch.upserts),
        tombstones.map((t) => t.chunkId),
        tombstones.map((t) => t.offset.toString()),
        ...rejectParams(rejects),
      ],
    })
    const { ok, advanced, upserted, deleted, stored } = result.rows[0]
    if (ok && advanced === parts.length)
      return { status: 'committed', upserted, deleted, alreadyCommitted: false, visibleAtMs: Date.now() }
    if (ok) {
      // Cannot happen while the offsets rows stay locked from the check to the update; say so loudly.
      throw new Error(
        `the sink's batch on ${batch.topic} advanced ${advanced} of ${parts.length} offsets rows after its fence passed`,
      )
    }
    return fenceOutcome(batch, stored ?? [], null)
  }

  async #write(client: pg.Client, batch: SinkBatch, isolate: boolean): Promise<BatchOutcome> {
    const parts = batch.partitions
    await client.query('BEGIN')
    try {
      const fenced = await client.query<{ partition: number }>(this.#fenceSql, [
        batch.topic,
        parts.map((p) => p.partition),
        parts.map((p) => p.expected.toString()),
        parts.map((p) => p.next.toString()),
        parts.map((p) => p.ownerToken),
      ])
      if (fenced.rowCount !== parts.length) {
        await client.query('ROLLBACK')
        return this.#resolveFence(client, batch, new Set(fenced.rows.map((r) => r.partition)))
      }
      let upserted = 0
      let deleted = 0
      const refused: RejectRow[] = []
      // One statement per kind, or (isolating) one per row behind a savepoint.
      const each = async <T>(
        rows: readonly T[],
        run: (rows: readonly T[]) => Promise<void>,
        position: (row: T) => Pick<RejectRow, 'topic' | 'partition' | 'offset' | 'key' | 'source'>,
      ): Promise<void> => {
        if (rows.length === 0) return
        if (!isolate) return run(rows)
        for (const row of rows) {
          await client.query('SAVEPOINT row')
          try {
            await run([row])
            await client.query('RELEASE SAVEPOINT row')
          } catch (error) {
            if (!isRowRefusal(error)) throw error
            await client.query('ROLLBACK TO SAVEPOINT row')
            const e = error as { code?: string; message?: string }
            refused.push({
              ...position(row),
              code: 'RS_RECORD_INVALID',
              message: `PostgreSQL refused the row (SQLSTATE ${e.code}): ${excerpt(String(e.message), 300)}`,
            })
          }
        }
      }
      await each(
        batch.upserts,
        async (rows) => {
          upserted += (await client.query(this.#upsertSql, this.#upsertParams(rows))).rowCount ?? 0
        },
        (r) => ({
          topic: r.chunkTopic,
          partition: r.chunkPartition,
          offset: r.chunkOffset,
          key: excerpt(r.chunkId),
          source: { topic: r.sourceTopic, partition: r.sourcePartition, offset: r.sourceOffset },
        }),
      )
      await each(
        batch.tombstones,
        async (rows) => {
          const result = await client.query<{ deleted: number }>(this.#deleteSql, [
            rows.map((t) => t.chunkId),
            rows.map((t) => t.offset.toString()),
          ])
          deleted += result.rows[0].deleted
        },
        (t) => ({ topic: batch.topic, partition: t.partition, offset: t.offset, key: excerpt(t.chunkId) }),
      )
      await each(
        batch.audits,
        async (rows) => {
          await client.query(this.#auditSql, auditParams(await forgetSubjects(client, this.#names, rows)))
        },
        (a) => ({ topic: a.topic, partition: a.partition, offset: a.offset, key: excerpt(a.eventId) }),
      )
      const rejects = [...batch.rejects, ...refused]
      if (rejects.length > 0) {
        await client.query(this.#rejectSql, rejectParams(rejects))
      }
      await client.query('COMMIT')
      return {
        status: 'committed',
        upserted,
        deleted,
        alreadyCommitted: false,
        visibleAtMs: Date.now(),
        ...(refused.length > 0 ? { refused } : {}),
      }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    }
  }

  /** The fence failed for some partition: either an earlier attempt of this very batch committed, or another instance owns it now. */
  async #resolveFence(client: pg.Client, batch: SinkBatch, passed: ReadonlySet<number>): Promise<BatchOutcome> {
    const rows = await client.query<{ partition: number; next_offset: string; owner_token: string }>(this.#inspectSql, [
      batch.topic,
      batch.partitions.map((p) => p.partition),
    ])
    return fenceOutcome(batch, rows.rows, passed)
  }

  #upsertParams(rows: readonly ChunkRow[]): unknown[] {
    const cols: unknown[][] = Array.from({ length: 27 }, () => new Array(rows.length))
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]
      cols[0][i] = r.chunkId
      cols[1][i] = r.entityType
      cols[2][i] = r.entityKey
      cols[3][i] = r.chunkIndex
      cols[4][i] = r.content
      cols[5][i] = r.contentHash
      cols[6][i] = r.embedding
      cols[7][i] = r.metadata
      cols[8][i] = r.classification
      cols[9][i] = r.tenant
      cols[10][i] = r.region
      cols[11][i] = r.subjects
      cols[12][i] = r.policyVersion
      cols[13][i] = r.sourceTopic
      cols[14][i] = r.sourcePartition
      cols[15][i] = r.sourceOffset
      cols[16][i] = r.sourcePosition
      cols[17][i] = r.sourceTimestampMs
      cols[18][i] = r.topology
      cols[19][i] = r.topologyVersion
      cols[20][i] = r.chunker
      cols[21][i] = r.embeddingModel
      cols[22][i] = r.emittedAtMs
      cols[23][i] = r.chunkTopic
      cols[24][i] = r.chunkPartition
      cols[25][i] = r.chunkOffset.toString()
      cols[26][i] = r.sourceAppendedAtMs ?? null
    }
    const appended = cols.pop()!
    return [...cols, this.#writtenBy, appended]
  }
}

/**
 * A batch whose fence failed, from the offsets rows as stored (latest committed): it committed
 * already (an earlier attempt whose COMMIT's answer was lost: every row holds this batch's owner
 * token and next offset), or the partitions that did not pass are fenced: `passed` when the fence ran
 * as its own statement, else those whose row no longer holds this owner's token and expected offset.
 */
function fenceOutcome(
  batch: SinkBatch,
  rows: readonly { partition: number; next_offset: string; owner_token: string }[],
  passed: ReadonlySet<number> | null,
): BatchOutcome {
  const stored = new Map(rows.map((r) => [r.partition, r]))
  const holds = (p: PartitionProgress, offset: bigint) => {
    const row = stored.get(p.partition)
    return row !== undefined && row.owner_token === p.ownerToken && BigInt(row.next_offset) === offset
  }
  if (batch.partitions.every((p) => holds(p, p.next)))
    return { status: 'committed', upserted: 0, deleted: 0, alreadyCommitted: true }
  const fenced = batch.partitions.filter((p) => (passed === null ? !holds(p, p.expected) : !passed.has(p.partition)))
  // None looks moved (cannot happen: the check read these very rows): give them all up and claim afresh.
  return { status: 'fenced', partitions: (fenced.length > 0 ? fenced : batch.partitions).map((p) => p.partition) }
}

/** The reject statement's nine arrays, in its parameters' order. */
function rejectParams(rows: readonly RejectRow[]): unknown[] {
  return [
    rows.map((x) => x.topic),
    rows.map((x) => x.partition),
    rows.map((x) => x.offset.toString()),
    rows.map((x) => x.code),
    rows.map((x) => x.message),
    rows.map((x) => x.key),
    rows.map((x) => x.source?.topic ?? null),
    rows.map((x) => x.source?.partition ?? null),
    rows.map((x) => x.source?.offset ?? null),
  ]
}

function auditParams(rows: readonly AuditRow[]): unknown[] {
  return [
    rows.map((r) => r.eventId),
    rows.map((r) => r.kind),
    rows.map((r) => r.topology),
    rows.map((r) => r.topologyVersion),
    rows.map((r) => r.requestId),
    rows.map((r) => r.subjectHash),
    rows.map((r) => r.entityKeyHash),
    rows.map((r) => r.reason),
    rows.map((r) => r.counts),
    rows.map((r) => r.atMs),
    rows.map((r) => r.topic),
    rows.map((r) => r.partition),
    rows.map((r) => r.offset.toString()),
  ]
}

/**
 * Claims partitions for this instance: a fresh owner token per claim moves the fence, so any batch
 * still in flight from an earlier owner (or an earlier assignment of this instance) cannot commit.
 * Returns the stored next offset per claimed partition (inserting `initial` where none is stored yet).
 *
 * A partition whose offsets row is locked by another session (an earlier owner frozen inside its
 * batch transaction) is skipped, not waited for, and left out of the result: the caller claims it
 * again later. So a frozen sink delays only its own partitions, and only until Postgres ends its
 * session (idle_in_transaction_session_timeout), never the partitions of the sinks that are alive.
 */
export async function claimPartitions(
  client: pg.Client,
  names: SinkNames,
  topic: string,
  claims: readonly { partition: number; initial: bigint; ownerToken: string }[],
): Promise<Map<number, bigint>> {
  const partitions = claims.map((c) => c.partition)
  await client.query('BEGIN')
  try {
    // Committed rows, read without waiting for anyone's lock.
    const existing = await client.query<{ partition: number }>(
      `SELECT partition FROM ${names.offsetsTable} WHERE topic = $1 AND partition = ANY($2::int[])`,
      [topic, partitions],
    )
    const stored = new Set(existing.rows.map((r) => r.partition))
    const fresh = claims.filter((c) => !stored.has(c.partition))
    const claimed = new Map<number, bigint>()
    if (fresh.length > 0) {
      const inserted = await client.query<{ partition: number; next_offset: string }>(
        `INSERT INTO ${names.offsetsTable} AS o (topic, partition, next_offset, owner_token, claimed_at, updated_at)
         SELECT $1, partition, initial, owner_token, clock_timestamp(), clock_timestamp()
         FROM unnest($2::int[], $3::bigint[], $4::uuid[]) AS u(partition, initial, owner_token)
         ON CONFLICT (topic, partition) DO NOTHING
         RETURNING partition, next_offset`,
        [topic, fresh.map((c) => c.partition), fresh.map((c) => c.initial.toString()), fresh.map((c) => c.ownerToken)],
      )
      for (const r of inserted.rows) claimed.set(r.partition, BigInt(r.next_offset))
    }
    const taken = claims.filter((c) => !claimed.has(c.partition))
    if (taken.length > 0) {
      const updated = await client.query<{ partition: number; next_offset: string }>(
        `WITH lockable AS (
           SELECT partition FROM ${names.offsetsTable}
           WHERE topic = $1 AND partition = ANY($2::int[]) FOR UPDATE SKIP LOCKED)
         UPDATE ${names.offsetsTable} AS o SET owner_token = u.owner_token, claimed_at = clock_timestamp()
         FROM unnest($2::int[], $3::uuid[]) AS u(partition, owner_token)
         WHERE o.topic = $1 AND o.partition = u.partition AND o.partition IN (SELECT partition FROM lockable)
         RETURNING o.partition, o.next_offset`,
        [topic, taken.map((c) => c.partition), taken.map((c) => c.ownerToken)],
      )
      for (const r of updated.rows) claimed.set(r.partition, BigInt(r.next_offset))
    }
    await client.query('COMMIT')
    return claimed
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  }
}
