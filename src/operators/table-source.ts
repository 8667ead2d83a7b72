/**
 * `table-source`: a KTable read from a topic. Per key the latest row wins; a null value (or a decoder
 * returning `value: null`, e.g. Debezium `op=d`) deletes the key. The table is materialized in the
 * store named after the node (its changelog is `<application>-<name>-changelog`), so downstream
 * operators get the old and the new value of every change.
 */
import { isEventTime, rowChangeTime } from '../cdc/table-decoder.ts'
import { RagstreamError } from '../errors.ts'
import type { AuditEventValue } from '../governance/audit.ts'
import { decodeSuppression, suppresses, type SuppressionRecord } from '../governance/forget/suppression.ts'
import { hashSubject } from '../governance/subject.ts'
import { report, telemetryActive } from '../observability/telemetry.ts'
import type { SourceRecord } from '../runtime/task.ts'
import { CHANGELOG_CONFIG, REPARTITION_CONFIG, type NodeKindSpec, type StageBuffer } from '../topology/compiled.ts'
import {
  changelogTopic,
  forgetRepartitionTopic,
  tableResetTopic,
  forgottenSubjectsStore,
  topicNameProblem,
  type TableSubject,
  type TopologyGraph,
  type DecodedRecord,
  type Decoder,
  type DecoderPreparer,
  type StageItem,
  type StageNode,
  type TableSourceNode,
} from '../topology/graph.ts'
import { decodeJson, encodeJson } from '../topology/json.ts'
import { factsOf, nodeIs, tableRoot } from '../topology/node-kinds.ts'
import { partitionForString } from '../topology/partitioner.ts'
import { WHOLE_PARTITION, groupedKey } from '../state/store.ts'
import {
  CDC_STATE_KEY,
  changedBefore,
  decodeReset,
  encodeReset,
  laterTruncate,
  readCdcState,
  resetAudit,
  resetRemoves,
  type CdcTableState,
  type ResetPoint,
  type ResetRecord,
} from './table-reset.ts'
import { recordFailure } from '../topology/user-code.ts'
import { tableAuditOutputs, tableAuditTopics } from './audit-outputs.ts'
import type { AuditOutput } from './govern/options.ts'

export interface TableOptions {
  /** Required: the table's store and changelog identity. */
  readonly name: string
  /**
   * Turns key/value bytes into `{ key, value }` (`value: null` deletes). Required for CDC tables
   * (e.g. the Debezium decoder from `src/cdc`); compacted tables default to UTF-8 keys and JSON values.
   */
  readonly decode?: Decoder
  /** Runs once per batch, with this topic's records, before any of them is decoded (e.g. Avro schema loads). */
  readonly prepare?: DecoderPreparer
  /**
   * The data subject a row belongs to, for forgetting by construction: a subject type when the row's
   * key is the subject's id (`'customer'`: row 42 is `customer:42`), or a function naming the row's
   * subject (`(ticket) => \`customer:${ticket.customer_id}\``, null for none). A forgotten subject's
   * later changes are then dropped here, where they enter (a delete downstream, nothing stored), and
   * `govern` removes the subject's rows from this table's store and from every join that reads it.
   */
  readonly subject?: TableSubject
  /**
   * CDC tables: where the audit events of its truncates and completed snapshots go (`TRUNCATED`,
   * `SNAPSHOT_RESET`: the rows each partition removed, no content). Default: the audit topic of every
   * `govern` the table feeds, and the chunk topic of every `toChunks` it reaches without one, in the
   * services' encoding (what the pgvector sink reads); with none of these, no event is written (the
   * reset is still counted in `ragstream_table_resets_total`). `encode` defaults to JSON.
   */
  readonly audit?: AuditOutput
}

export function tableSourceNode(
  name: string,
  named: boolean,
  topic: string,
  format: 'cdc' | 'compacted',
  decode: Decoder | undefined,
  prepare?: DecoderPreparer,
  subject?: TableSubject,
  audit?: AuditOutput,
): TableSourceNode {
  return Object.freeze({
    kind: 'table-source',
    name,
    named,
    inputs: Object.freeze([]),
    topic,
    format,
    decode,
    prepare,
    ...(subject === undefined ? {} : { subject }),
    ...(audit === undefined ? {} : { audit }),
  })
}

/** The subject of a decoded row, or null (see {@link TableOptions.subject}). */
export function subjectOfRow(subject: TableSubject, key: string, value: unknown): string | null {
  if (typeof subject === 'string') return `${subject}:${key}`
  if (value === null || value === undefined) return null
  const named = subject(value, key)
  return typeof named === 'string' && named !== '' ? named : null
}

/**
 * The store of a table's row keys per subject: `groupedKey(<subject hash>, row key)` → `1`. Kept by a table whose rows name their subject with a function and whose
 * rows an aggregate gathers (see {@link keepsRowSubjects}).
 */
const INDEXED = Buffer.from('1', 'latin1')

export function rowSubjectsStore(table: string): string {
  return `${table}-subjects`
}

/**
 * True when the table keeps {@link rowSubjectsStore}: its rows name their subject with a function
 * (the row key is not the subject's id), an aggregate groups them, and a govern forgets. Forgetting a
 * subject then finds the subject's rows with one prefix scan (src/operators/govern/forget.ts) and
 * sends their keys on the table's forget topic ({@link forgetRepartitionTopic}) to this table's own
 * task, which deletes each row as a delete of the row would: it leaves every aggregate it
 * contributed to, and the parents are re-emitted without it (forgetting per contribution).
 */
export function keepsRowSubjects(node: TableSourceNode, graph: TopologyGraph): boolean {
  return (
    typeof node.subject === 'function' &&
    forgottenStores(graph).length > 0 &&
    graph.nodes.some((n) => nodeIs(n, 'aggregate') && tableRoot(graph, n.inputs[0]) === node.name)
  )
}

/** The forgotten-subjects stores of the topology's governs: where a table source looks its rows' subjects up. */
function forgottenStores(graph: TopologyGraph): string[] {
  return graph.nodes.flatMap((n) =>
    nodeIs(n, 'govern') && n.options?.forget !== undefined && n.options.forget !== null
      ? [forgottenSubjectsStore(n.name)]
      : [],
  )
}

/** The record's source time (its event time, and what suppression compares): its CDC lineage, else the record timestamp. */
function sourceTimeOf(value: unknown, record: SourceRecord): number {
  return rowChangeTime(value) ?? Number(record.timestamp)
}

/** UTF-8 string key, JSON value, null value = tombstone. */
export function defaultTableDecoder(key: Buffer | null, value: Buffer | null, _record: SourceRecord): DecodedRecord {
  if (key === null) throw new RagstreamError('RS_DECODE_FAILED', 'a table record needs a key')
  return value === null
    ? { key: key.toString('utf8'), value: null }
    : { key: key.toString('utf8'), value: decodeJson(value), json: value }
}

/**
 * The row with each unavailable column (an unchanged TOAST value the source did not send) set to the
 * column's value in the row the store holds for the key. No stored row, or one without the column:
 * RS_DECODE_FAILED (dead-lettered), because indexing the placeholder would replace real text with it.
 */
function withPreviousColumns(
  record: SourceRecord,
  key: string,
  value: unknown,
  columns: readonly string[],
  oldBytes: Buffer | undefined,
): Record<string, unknown> {
  const previous = oldBytes === undefined ? undefined : (decodeJson(oldBytes) as Record<string, unknown> | null)
  const missing = columns.filter((c) => previous === undefined || previous === null || !(c in previous))
  if (missing.length > 0) {
    const where = `${record.topic}[${record.partition}]@${record.offset}`
    const hint =
      'set REPLICA IDENTITY FULL on the source table (ALTER TABLE … REPLICA IDENTITY FULL) so updates carry every ' +
      'column, or re-snapshot the table so ragstream holds the full rows'
    // The hint is in the message too: the dead-letter headers carry the message, not the hint.
    throw new RagstreamError(
      'RS_DECODE_FAILED',
      `cannot decode ${where}: key ${key}: column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ` +
        `arrived as the unchanged-TOAST placeholder and the table holds no previous value; ${hint}`,
      {
        context: { topic: record.topic, partition: record.partition, offset: record.offset, key, columns: missing },
        hint,
      },
    )
  }
  const row = { ...(value as Record<string, unknown>) }
  for (const column of columns) row[column] = (previous as Record<string, unknown>)[column]
  return row
}

export const tableSourceOperator: NodeKindSpec<TableSourceNode> = {
  facts: { stateful: true, role: 'source', table: 'root', emitsStoredValue: true },
  externalTopics: (node, graph) => ({ reads: [node.topic], writes: tableAuditTopics(node, graph) }),
  preparer: (node) => (node.prepare === undefined ? undefined : { topic: node.topic, prepare: node.prepare }),
  validate(node, _graph, problem) {
    const topicProblem = topicNameProblem(node.topic)
    if (topicProblem !== '') problem('topic', topicProblem)
    if (node.format === 'cdc' && node.decode === undefined)
      problem('decode', 'required for a CDC table (e.g. the Debezium decoder from src/cdc)')
    if (node.decode !== undefined && typeof node.decode !== 'function')
      problem('decode', 'must be a function (key, value, record) => { key, value }')
    if (node.prepare !== undefined && typeof node.prepare !== 'function')
      problem('prepare', 'must be a function (records) => Promise<void>')
    const subject = node.subject
    if (
      subject !== undefined &&
      typeof subject !== 'function' &&
      !(typeof subject === 'string' && /^[a-z][a-z0-9_-]*$/.test(subject))
    )
      problem(
        'subject',
        "must be a subject type (e.g. 'customer': the row key is the id) or (row, key) => 'type:id' | null",
      )
    const audit = node.audit
    if (audit === undefined) return
    if (node.format !== 'cdc') problem('audit', 'only a CDC table (cdcTable) resets, so only it writes audit events')
    else if (audit === null || typeof audit !== 'object') problem('audit', 'must be { topic, encode?, open? }')
    else {
      const topic = topicNameProblem(audit.topic)
      if (topic !== '') problem('audit/topic', topic)
      if (audit.encode !== undefined && typeof audit.encode !== 'function')
        problem('audit/encode', 'must be a function (event) => Buffer')
      if (audit.open !== undefined && typeof audit.open !== 'function')
        problem('audit/open', 'must be a function () => Promise<void>')
    }
  },
  stores: (node, graph) => (keepsRowSubjects(node, graph) ? [node.name, rowSubjectsStore(node.name)] : [node.name]),
  internalTopics: (node, graph) => [
    {
      name: changelogTopic(graph.applicationId, node.name),
      role: 'changelog',
      store: node.name,
      purpose: `changelog of store ${node.name}`,
      config: CHANGELOG_CONFIG,
    },
    ...(keepsRowSubjects(node, graph)
      ? [
          {
            name: changelogTopic(graph.applicationId, rowSubjectsStore(node.name)),
            role: 'changelog' as const,
            store: rowSubjectsStore(node.name),
            purpose: `changelog of store ${rowSubjectsStore(node.name)} (row keys per subject, for forgetting)`,
            config: CHANGELOG_CONFIG,
          },
          {
            name: forgetRepartitionTopic(graph.applicationId, node.name),
            role: 'repartition' as const,
            purpose: `${node.name} rows of forgotten subjects (keys only), keyed by row key: deleted from every aggregate`,
            config: REPARTITION_CONFIG,
          },
        ]
      : []),
    ...(node.format === 'cdc'
      ? [
          {
            name: tableResetTopic(graph.applicationId, node.name),
            role: 'repartition' as const,
            purpose: `truncates and completed snapshots of ${node.name}, and the row deletes they cause`,
            config: REPARTITION_CONFIG,
          },
        ]
      : []),
  ],
  physical: (node, graph) => {
    const cdc = node.format === 'cdc'
    const reset = tableResetTopic(graph.applicationId, node.name)
    const audits = tableAuditTopics(node, graph).map((topic, i, all) => ({
      type: 'sink' as const,
      name: all.length === 1 ? `${node.name}-audit-sink` : `${node.name}-audit-sink-${i}`,
      topic,
      next: [],
    }))
    return {
      nodes: [
        { type: 'source', name: `${node.name}-source`, topics: [node.topic], next: [node.name] },
        ...(keepsRowSubjects(node, graph)
          ? [
              {
                type: 'source' as const,
                name: `${node.name}-forget-source`,
                topics: [forgetRepartitionTopic(graph.applicationId, node.name)],
                next: [node.name],
              },
            ]
          : []),
        ...(cdc
          ? [{ type: 'source' as const, name: `${node.name}-reset-source`, topics: [reset], next: [node.name] }]
          : []),
        {
          type: 'processor',
          name: node.name,
          stores: keepsRowSubjects(node, graph) ? [node.name, rowSubjectsStore(node.name)] : [node.name],
          detail: cdc ? 'table: cdc, truncates and snapshots reset it' : `table: ${node.format}`,
          next: cdc ? [`${node.name}-reset-sink`, ...audits.map((a) => a.name)] : [],
        },
        ...(cdc ? [{ type: 'sink' as const, name: `${node.name}-reset-sink`, topic: reset, next: [] }] : []),
        ...audits,
      ],
      entries: [],
      exit: node.name,
    }
  },
  getter: (node, graph) => ({
    store: node.name,
    // A forgotten row's retraction and a reset's row deletes change the table too (deletes): readers
    // prefetch on them as on the topic.
    topics: [
      node.topic,
      ...(keepsRowSubjects(node, graph) ? [forgetRepartitionTopic(graph.applicationId, node.name)] : []),
      ...(node.format === 'cdc' ? [tableResetTopic(graph.applicationId, node.name)] : []),
    ],
    raw: true,
    get: (bytes) => (bytes === undefined ? null : decodeJson(bytes)),
  }),
  compile(node, env) {
    const { scope } = env
    const name = node.name
    const decoder = node.decode ?? defaultTableDecoder
    const emit = env.downstream(name)
    // Old values cost a JSON parse per change; only operators other than sinks use them.
    const needsOld = env.graph.nodes.some((n) => n.inputs.includes(name) && factsOf(n).role !== 'sink')
    env.addPrefetch(node.topic, name)
    // Forgetting where data enters: a row of a forgotten subject is dropped (a delete) before any store holds it.
    const subject = node.subject
    const forgotten = subject === undefined ? [] : forgottenStores(env.graph)
    const subjectHash = (decoded: DecodedRecord): string | null => {
      if (decoded.value === null || decoded.value === undefined) return null
      const named = subjectOfRow(subject!, decoded.key, decoded.value)
      return named === null ? null : hashSubject(named)
    }
    for (const store of forgotten) env.addPrefetch(node.topic, store, subjectHash)
    const isForgotten = (decoded: DecodedRecord, record: SourceRecord): boolean => {
      if (forgotten.length === 0) return false
      const hash = subjectHash(decoded)
      if (hash === null) return false
      for (const store of forgotten) {
        const bytes = scope.stores.get(store)!.get(record.partition, hash)
        if (bytes !== undefined && suppresses(decodeSuppression(bytes), sourceTimeOf(decoded.value, record)))
          return true
      }
      return false
    }
    // Row keys per subject (keepsRowSubjects): written blind (no read), the old row says which entry exists.
    const rowSubjects = keepsRowSubjects(node, env.graph) ? rowSubjectsStore(name) : undefined
    const SUBJECT_OF_ROW = subject as Exclude<TableSubject, string>
    const indexRow = (partition: number, key: string, oldRow: unknown, newRow: unknown): void => {
      const index = scope.stores.get(rowSubjects!)!
      const before = oldRow === null ? null : subjectOfRow(SUBJECT_OF_ROW, key, oldRow)
      const after = newRow === null ? null : subjectOfRow(SUBJECT_OF_ROW, key, newRow)
      if (before === after) return
      if (before !== null) {
        const entry = groupedKey(hashSubject(before), key)
        scope.undo.remember(index, partition, entry, INDEXED)
        index.delete(partition, entry)
      }
      if (after !== null) {
        const entry = groupedKey(hashSubject(after), key)
        scope.undo.remember(index, partition, entry, undefined)
        index.put(partition, entry, INDEXED)
      }
    }
    /** A row's delete: the store, the row-subject index and every consumer (an aggregate subtracts it). */
    const deleteRow = (partition: number, key: string, oldBytes: Buffer): void => {
      const store = scope.stores.get(name)!
      scope.undo.remember(store, partition, key, oldBytes)
      store.delete(partition, key)
      const oldRow = needsOld || rowSubjects !== undefined ? decodeJson(oldBytes) : undefined
      if (rowSubjects !== undefined) indexRow(partition, key, oldRow, null)
      emit(key, oldRow, null)
    }
    if (rowSubjects !== undefined) {
      // Forgetting per contribution: govern found this row under a forgotten subject; it goes as a
      // delete would, unless it has changed since (another subject now, or, under BEFORE_REQUEST,
      // written after the request; a row without a source time counts as written before it).
      const forgetTopic = forgetRepartitionTopic(env.graph.applicationId, name)
      env.addPrefetch(forgetTopic, name)
      env.addTopic(forgetTopic, {
        node: name,
        decode(record) {
          if (record.key === null || record.value === null)
            throw new RagstreamError('RS_DECODE_FAILED', 'a forget record needs a key and a suppression value')
          return { key: record.key.toString('utf8'), value: decodeSuppression(record.value) }
        },
        handle(record, decoded) {
          const suppression = decoded.value as SuppressionRecord
          const oldBytes = scope.stores.get(name)!.get(record.partition, decoded.key)
          if (oldBytes === undefined) return
          const row = decodeJson(oldBytes)
          const named = subjectOfRow(SUBJECT_OF_ROW, decoded.key, row)
          if (named === null || hashSubject(named) !== suppression.subjectHash) return
          if (!suppresses(suppression, rowChangeTime(row) ?? Number.NEGATIVE_INFINITY)) return
          deleteRow(record.partition, decoded.key, oldBytes)
        },
      })
    }
    const rowsStore = (): NonNullable<ReturnType<typeof scope.stores.get>> => scope.stores.get(name)!

    // CDC tables: truncates and completed snapshots reset the table (src/operators/table-reset.ts).
    const cdc = node.format === 'cdc'
    const resetTopic = tableResetTopic(env.graph.applicationId, name)
    const partitions = env.partitions
    const readState = (partition: number): CdcTableState => readCdcState(rowsStore().get(partition, CDC_STATE_KEY))
    const writeState = (partition: number, state: CdcTableState): CdcTableState => {
      const rows = rowsStore()
      scope.undo.remember(rows, partition, CDC_STATE_KEY, rows.get(partition, CDC_STATE_KEY))
      if (state.truncated === undefined && state.snapshotFrom === undefined && state.removed === undefined)
        rows.delete(partition, CDC_STATE_KEY)
      else rows.put(partition, CDC_STATE_KEY, encodeJson(state))
      return state
    }
    const sendReset = (partition: number, key: string | null, value: Buffer): void => {
      scope.out.push({ topic: resetTopic, partition, key: key === null ? null : Buffer.from(key, 'utf8'), value })
    }
    /** The snapshot run of this partition is complete: rows it did not read again, changed before it, are gone. */
    const completeSnapshot = (partition: number, state: CdcTableState, table: string | null): CdcTableState => {
      const point: ResetPoint = {
        kind: 'snapshot',
        partition,
        before: state.snapshotFrom!,
        timestampMs: scope.timestamp,
      }
      sendReset(partition, null, encodeReset({ reset: point, table }))
      const { snapshotFrom: _done, ...rest } = state
      return writeState(partition, rest)
    }
    // Rows this batch's reset row deletes removed, per partition: counted in memory, added to the
    // partition's state once after the batch (a truncate of many rows then costs one state write per
    // batch, not one per row). A failed batch forgets them with the rest of its writes.
    const removedInBatch = new Map<number, number>()
    if (cdc)
      env.addBatchState({
        flush() {
          for (const [partition, n] of removedInBatch) {
            const state = readState(partition)
            writeState(partition, { ...state, removed: (state.removed ?? 0) + n })
          }
          removedInBatch.clear()
        },
        reset() {
          removedInBatch.clear()
        },
      })
    /** A reset's row deletes on this partition are done: its audit event and telemetry (table-reset.ts, step 4). */
    const auditOf = cdc ? resetAuditor(node, env) : undefined
    const reportReset = (record: SourceRecord, point: ResetPoint, table: string | null): void => {
      const state = readState(record.partition)
      const removed = (state.removed ?? 0) + (removedInBatch.get(record.partition) ?? 0)
      removedInBatch.delete(record.partition)
      if (state.removed !== undefined) {
        const { removed: _reported, ...rest } = state
        writeState(record.partition, rest)
      }
      if (telemetryActive())
        report({
          kind: 'table-reset',
          table: name,
          reset: point.kind,
          partition: record.partition,
          rowsRemoved: removed,
        })
      // A truncate is audited on every partition (0 rows too: the proof it reached each); a snapshot when it removed rows.
      if (point.kind === 'snapshot' && removed === 0) return
      auditOf?.(
        resetAudit({
          topology: env.graph.applicationId,
          topologyVersion: env.graph.version ?? null,
          table: name,
          sourceTable: table,
          point,
          partition: record.partition,
          rowsRemoved: removed,
          atMs: point.kind === 'truncate' ? point.timestampMs : (point.timestampMs ?? Number(record.timestamp)),
        }),
      )
    }
    if (cdc) {
      env.addPrefetch(node.topic, name, () => CDC_STATE_KEY)
      env.addPrefetch(resetTopic, name)
      env.addPrefetch(resetTopic, name, () => CDC_STATE_KEY)
      env.addPrefetchScan(resetTopic, name, (decoded) =>
        decoded.key === '' && 'reset' in (decoded.value as ResetRecord) ? WHOLE_PARTITION : null,
      )
      env.addTopic(resetTopic, {
        node: name,
        decode: (record) => ({
          key: record.key === null ? '' : record.key.toString('utf8'),
          value: decodeReset(record.value),
        }),
        handle(record, decoded) {
          const partition = record.partition
          const reset = decoded.value as ResetRecord
          if ('delete' in reset) {
            // A row delete: the row goes if it still changed before the reset (a later change keeps it).
            const oldBytes = rowsStore().get(partition, decoded.key)
            if (oldBytes !== undefined && resetRemoves(decodeJson(oldBytes), reset.delete)) {
              deleteRow(partition, decoded.key, oldBytes)
              removedInBatch.set(partition, (removedInBatch.get(partition) ?? 0) + 1)
            }
            return
          }
          if ('done' in reset) return reportReset(record, reset.done, reset.table)
          const point = reset.reset
          if (point.kind === 'truncate') {
            const state = readState(partition)
            writeState(partition, { ...state, truncated: laterTruncate(state.truncated, point) })
          }
          const value = encodeReset({ delete: point })
          for (const [key, bytes] of rowsStore().scan(partition, WHOLE_PARTITION)) {
            if (key !== CDC_STATE_KEY && resetRemoves(decodeJson(bytes), point)) sendReset(partition, key, value)
          }
          sendReset(partition, null, encodeReset({ done: point, table: reset.table }))
        },
      })
    }

    env.addTopic(node.topic, {
      node: name,
      decode(record) {
        const decoded = decoder(record.key, record.value, record)
        if (decoded === null || typeof decoded !== 'object' || typeof decoded.key !== 'string') {
          throw new RagstreamError('RS_DECODE_FAILED', 'the decoder returned no string key')
        }
        return decoded
      },
      handle(record, decoded) {
        // Event time: when the change happened at its source (Debezium ts_ms), else the record's timestamp.
        scope.timestamp = isEventTime(decoded.timestamp) ? decoded.timestamp : sourceTimeOf(decoded.value, record)
        const store = scope.stores.get(name)!
        const partition = record.partition
        const key = decoded.key
        const mark = cdc ? decoded.cdc : undefined
        let state: CdcTableState | undefined
        if (cdc) {
          const truncate = mark?.truncate
          if (truncate !== undefined) {
            const point: ResetPoint = {
              kind: 'truncate',
              position: truncate.position,
              timestampMs: truncate.timestampMs,
            }
            const value = encodeReset({ reset: point, table: truncate.table })
            for (let p = 0; p < partitions; p++) sendReset(p, null, value)
            return
          }
          state = readState(partition)
          const snapshot = mark?.snapshot
          if (snapshot === 'streamed') {
            if (state.snapshotFrom !== undefined) state = completeSnapshot(partition, state, null)
          } else if (snapshot !== undefined && (snapshot === 'first' || state.snapshotFrom === undefined))
            state = writeState(partition, { ...state, snapshotFrom: String(record.offset) })
          // A change older than a truncate this partition already applied (it lagged behind the truncate).
          if (
            state.truncated !== undefined &&
            decoded.value !== null &&
            changedBefore(decoded.value, state.truncated) === true
          )
            return
        }
        const oldBytes = store.get(partition, key)
        const value = decoded.value === undefined || isForgotten(decoded, record) ? null : decoded.value
        if (value === null) {
          if (oldBytes !== undefined) deleteRow(partition, key, oldBytes)
        } else {
          const unavailable = decoded.unavailable
          let bytes: Buffer
          try {
            bytes =
              unavailable !== undefined && unavailable.length > 0
                ? encodeJson(withPreviousColumns(record, key, value, unavailable, oldBytes))
                : (decoded.json ?? encodeJson(value))
          } catch (error) {
            // A decoder's value may not be JSON (a bigint), or lack its unchanged columns: that record's failure.
            throw recordFailure(name, error)
          }
          // An unchanged row (a CDC snapshot re-read, a producer retry) is still a change downstream,
          // as before, but rewriting the same bytes would only add a changelog record.
          if (oldBytes === undefined || !oldBytes.equals(bytes)) {
            scope.undo.remember(store, partition, key, oldBytes)
            store.put(partition, key, bytes)
          }
          const row = unavailable !== undefined && unavailable.length > 0 ? decodeJson(bytes) : value
          scope.encodedValue = row
          scope.encodedBytes = bytes
          const oldRow =
            oldBytes === undefined ? null : needsOld || rowSubjects !== undefined ? decodeJson(oldBytes) : undefined
          if (rowSubjects !== undefined) indexRow(partition, key, oldRow, row)
          emit(key, oldRow, row)
        }
        if (mark?.snapshot === 'last') completeSnapshot(partition, state!, null)
      },
    })
    return []
  },
}

/**
 * How a CDC table writes the audit events of its resets: to each of its audit outputs
 * (src/operators/audit-outputs.ts), keyed and partitioned by event id. Opening an output (an Avro
 * codec registering its schema) is I/O, so the events go through a stage of the table's own: the
 * synchronous pass buffers them, the stage opens the outputs once per batch, and they are written in
 * the batch's transaction under the done record that produced them. Undefined without outputs.
 */
function resetAuditor(
  node: TableSourceNode,
  env: Parameters<NodeKindSpec<TableSourceNode>['compile']>[1],
): ((event: AuditEventValue) => void) | undefined {
  const outputs = tableAuditOutputs(node, env.graph, env.services)
  if (outputs.length === 0) return undefined
  const { scope } = env
  const writers = outputs.map((output) => ({
    topic: output.topic,
    partitions: env.sinkPartitions(output.topic),
    encode: output.encode ?? ((event: AuditEventValue) => encodeJson(event)),
  }))
  const items: StageItem[] = []
  const origins: SourceRecord[] = []
  const stageNode: StageNode = Object.freeze({
    kind: 'stage',
    name: `${node.name}-audit`,
    named: true,
    inputs: Object.freeze([node.name]),
    stageKind: 'audit',
    stores: Object.freeze([]),
    processor: {
      async process(batch: readonly StageItem[]) {
        await Promise.all(outputs.flatMap((o) => (o.open === undefined ? [] : [o.open()])))
        return batch.map((item) => [{ key: item.key, value: item.value }])
      },
    },
  })
  const buffer: StageBuffer = {
    node: stageNode,
    items,
    origins,
    emit(key, _oldValue, value) {
      const bytes = Buffer.from(key, 'utf8')
      for (const w of writers)
        scope.out.push({
          topic: w.topic,
          partition: partitionForString(key, w.partitions),
          key: bytes,
          value: w.encode(value as AuditEventValue),
        })
    },
  }
  env.addStage(buffer)
  return (event) => {
    items.push({
      key: event.event_id,
      value: event,
      oldValue: undefined,
      partition: scope.record.partition,
      timestamp: scope.timestamp,
      origin: scope.origin,
    })
    origins.push(scope.record)
  }
}
