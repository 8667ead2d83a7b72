/**
 * Metrics wiring for the processor and the sink without touching either: the runtime and the sink
 * already report what happens (runtime events, batch stages, sink log events, telemetry from inside
 * the topology); this module turns those reports into the families of `src/observability/metrics.ts`.
 *
 * Records in/out/dead-lettered are counted from what `process()` returned, but applied only when the
 * batch's transaction commits: an aborted batch is processed again, and counting it twice would
 * overstate throughput (the counters mean "committed", like the output topics under read_committed).
 *
 * Components inside the topology (govern, redactAtSource decoders, embedders) report counts to the
 * telemetry scope each call into the topology runs in (src/observability/telemetry.ts). Governance
 * counts describe the batch's records, so they too wait for the commit; embedding calls cost money
 * and time whether the batch commits or not, so they are counted as they happen.
 */
import { Admin as AdminClient, type Admin } from '@platformatic/kafka'
import type pg from 'pg'
import type { Metrics } from '../observability/metrics.ts'
import { withTelemetry, type TelemetryEvent, type TelemetryListener } from '../observability/telemetry.ts'
import type { BatchStage, KafkaRuntimeOptions, RuntimeEvent } from '../runtime/kafka-runtime.ts'
import { COMMITTED_FRESHNESS, type SinkLogEvent } from '../sink/pgvector-sink.ts'
import type { ProcessorTopology, SourceRecord } from '../runtime/task.ts'
import { DEAD_LETTER_HEADERS } from '../topology/compile.ts'
import { consumerLag } from './consumer-lag.ts'
import { LagClock } from './lag-seconds.ts'

/** Counters a live display reads directly (the same numbers as the metrics, without parsing them). */
export interface ProcessorCounters {
  recordsIn: number
  recordsOut: number
  deadLetters: number
  batches: number
  aborts: number
}

export interface InstrumentedProcessor {
  /** The topology to run: the same, with its `process` counted. */
  readonly topology: ProcessorTopology
  /** Pass both to `KafkaRuntime` (they chain to `onEvent`/`onBatchStage` given here). */
  readonly onEvent: (event: RuntimeEvent) => void
  readonly onBatchStage: (stage: BatchStage) => void | Promise<void>
  readonly counters: Readonly<ProcessorCounters>
}

/** One batch's governance counts (and its table resets), keyed `<node>\u0000<detector|outcome|reset>`, applied when it commits. */
class GovernanceCounts {
  readonly redactions = new Map<string, number>()
  readonly rows = new Map<string, number>()
  readonly requests = new Map<string, number>()
  readonly forgotten = new Map<string, number>()
  readonly resets = new Map<string, number>()
  readonly resetRows = new Map<string, number>()

  add(event: TelemetryEvent): void {
    if (event.kind === 'source-redactions') {
      for (const [detector, n] of Object.entries(event.redactions))
        bump(this.redactions, `source:${event.topic}\u0000${detector}`, n)
    } else if (event.kind === 'govern') {
      for (const [detector, n] of Object.entries(event.redactions))
        bump(this.redactions, `${event.node}\u0000${detector}`, n)
      for (const outcome of ['emitted', 'denied', 'suppressed', 'deleted'] as const)
        bump(this.rows, `${event.node}\u0000${outcome}`, event[outcome])
      bump(this.requests, event.node, event.requestsApplied)
      bump(this.forgotten, event.node, event.entitiesForgotten)
    } else if (event.kind === 'table-reset') {
      bump(this.resets, `${event.table}\u0000${event.reset}`, 1)
      bump(this.resetRows, `${event.table}\u0000${event.reset}`, event.rowsRemoved)
    }
  }

  apply(metrics: Metrics, topology: string): void {
    for (const [key, n] of this.redactions) {
      const [node, detector] = key.split('\u0000')
      metrics.inc('ragstream_redactions_total', { topology, node, detector }, n)
    }
    for (const [key, n] of this.rows) {
      const [node, outcome] = key.split('\u0000')
      metrics.inc('ragstream_governed_rows_total', { topology, node, outcome }, n)
    }
    for (const [node, n] of this.requests)
      metrics.inc('ragstream_deletion_requests_applied_total', { topology, node }, n)
    for (const [node, n] of this.forgotten) metrics.inc('ragstream_entities_forgotten_total', { topology, node }, n)
    for (const [key, n] of this.resets) {
      const [table, kind] = key.split('\u0000')
      metrics.inc('ragstream_table_resets_total', { topology, table, kind }, n)
    }
    for (const [key, n] of this.resetRows) {
      const [table, kind] = key.split('\u0000')
      metrics.inc('ragstream_table_reset_rows_total', { topology, table, kind }, n)
    }
  }
}

function bump(map: Map<string, number>, key: string, n: number): void {
  if (n > 0) map.set(key, (map.get(key) ?? 0) + n)
}

/** The embedding families from one embedder report (applied at once: calls happened, commit or not). */
function exportEmbedding(metrics: Metrics, event: TelemetryEvent): void {
  switch (event.kind) {
    case 'embedding-call': {
      const { model } = event
      metrics.inc('ragstream_embedding_calls_total', { model })
      metrics.inc('ragstream_embedding_items_total', { model }, event.items)
      metrics.inc('ragstream_embedding_tokens_total', { model }, event.tokens)
      if (event.retries > 0) metrics.inc('ragstream_embedding_retries_total', { model }, event.retries)
      metrics.observe('ragstream_embedding_latency_seconds', { model }, event.latencyMs / 1000)
      if (event.cpuMs > 0) metrics.inc('ragstream_embedding_cpu_seconds_total', { model }, event.cpuMs / 1000)
      break
    }
    case 'embedding-failure':
      metrics.inc('ragstream_embedding_failures_total', { model: event.model, code: event.code })
      if (event.retries > 0) metrics.inc('ragstream_embedding_retries_total', { model: event.model }, event.retries)
      break
    case 'embedding-cache':
      if (event.hits > 0) metrics.inc('ragstream_embedding_cache_hits_total', { model: event.model }, event.hits)
      if (event.misses > 0) metrics.inc('ragstream_embedding_cache_misses_total', { model: event.model }, event.misses)
      break
    case 'embedding-cache-evictions':
      metrics.inc('ragstream_embedding_cache_evictions_total', { model: event.model }, event.evicted)
      break
    case 'embedding-cache-write-failure':
      metrics.inc('ragstream_embedding_cache_write_failures_total', { model: event.model })
      break
    case 'embedding-cache-dropped':
      metrics.inc('ragstream_embedding_cache_dropped_total', { model: event.model }, event.vectors)
      break
    case 'embedding-throttled':
      metrics.inc('ragstream_embedding_throttled_seconds_total', { model: event.model }, event.ms / 1000)
      break
  }
}

/**
 * Wraps a compiled topology and returns the runtime callbacks that feed `metrics`.
 *
 * @example
 * const m = instrumentProcessor(topology, metrics, { onEvent: log })
 * new KafkaRuntime(m.topology, { ...options, onEvent: m.onEvent, onBatchStage: m.onBatchStage })
 */
export function instrumentProcessor(
  topology: ProcessorTopology,
  metrics: Metrics,
  chain: Pick<KafkaRuntimeOptions, 'onEvent' | 'onBatchStage'> = {},
): InstrumentedProcessor {
  const name = topology.applicationId
  const roles = new Map(topology.topics.map((t) => [t.name, t.role]))
  const counters: ProcessorCounters = { recordsIn: 0, recordsOut: 0, deadLetters: 0, batches: 0, aborts: 0 }
  // Every process() of the open transaction (hop chaining and the commit cadence run several in one):
  // counted when it commits, dropped when it aborts.
  let pending: {
    in: Map<string, number>
    out: Map<string, number>
    dlq: Map<string, number>
    governance: GovernanceCounts
  }[] = []
  let producedAt: number | undefined
  const add = (map: Map<string, number>, key: string): void => void map.set(key, (map.get(key) ?? 0) + 1)

  // A batch's governance counts, from its prepare/prefetchKeys (source decoders) to its process (govern).
  const governance = new WeakMap<readonly SourceRecord[], GovernanceCounts>()
  const scoped = <T>(records: readonly SourceRecord[], fn: () => T): T => {
    let counts = governance.get(records)
    if (counts === undefined) governance.set(records, (counts = new GovernanceCounts()))
    const batch = counts
    const listener: TelemetryListener = (event) => {
      if (event.kind === 'govern' || event.kind === 'source-redactions' || event.kind === 'table-reset')
        batch.add(event)
      else exportEmbedding(metrics, event)
    }
    return withTelemetry(listener, fn)
  }

  const wrapped: ProcessorTopology = {
    applicationId: topology.applicationId,
    sourceTopics: topology.sourceTopics,
    topics: topology.topics,
    storeNames: topology.storeNames,
    ...(topology.prepare ? { prepare: (records) => scoped(records, () => topology.prepare!(records)) } : {}),
    prefetchKeys: (records) => {
      governance.delete(records) // a batch processed again counts afresh
      return scoped(records, () => topology.prefetchKeys(records))
    },
    async process(records, stores, now) {
      const outputs = await scoped(records, () => topology.process(records, stores, now))
      const batch = {
        in: new Map<string, number>(),
        out: new Map<string, number>(),
        dlq: new Map<string, number>(),
        governance: governance.get(records) ?? new GovernanceCounts(),
      }
      governance.delete(records)
      for (const r of records) if (roles.get(r.topic) !== 'repartition') add(batch.in, r.topic)
      for (const r of outputs) {
        const role = roles.get(r.topic)
        if (role === 'sink') add(batch.out, r.topic)
        else if (role === 'dead-letter')
          add(
            batch.dlq,
            `${r.headers?.get(DEAD_LETTER_HEADERS.node)?.toString() ?? '?'}\u0000${r.headers?.get(DEAD_LETTER_HEADERS.code)?.toString() ?? '?'}`,
          )
      }
      pending.push(batch)
      return outputs
    },
  }

  const onBatchStage = async (stage: BatchStage): Promise<void> => {
    if (stage === 'produced') producedAt = performance.now()
    if (stage === 'committed') {
      if (producedAt !== undefined)
        metrics.observe(
          'ragstream_transaction_commit_seconds',
          { topology: name },
          (performance.now() - producedAt) / 1000,
        )
      producedAt = undefined
      counters.batches++
      const batches = pending
      pending = []
      for (const batch of batches) {
        for (const [node, n] of batch.in) {
          metrics.inc('ragstream_records_in_total', { topology: name, node }, n)
          counters.recordsIn += n
        }
        for (const [node, n] of batch.out) {
          metrics.inc('ragstream_records_out_total', { topology: name, node }, n)
          counters.recordsOut += n
        }
        for (const [key, n] of batch.dlq) {
          const [node, code] = key.split('\u0000')
          metrics.inc('ragstream_dead_letter_records_total', { topology: name, node, code }, n)
          counters.deadLetters += n
        }
        batch.governance.apply(metrics, name)
      }
    }
    await chain.onBatchStage?.(stage)
  }

  const onEvent = (event: RuntimeEvent): void => {
    if (event.event === 'isolating-records') {
      // The transaction was aborted to re-read its batch one record at a time: nothing of it counts.
      pending = []
    } else if (event.event === 'batch-aborted' || event.event === 'chain-conflict') {
      pending = []
      producedAt = undefined
      counters.aborts++
      const reason = event.event === 'chain-conflict' ? 'chain-conflict' : event.recovery
      metrics.inc('ragstream_transactions_aborted_total', { topology: name, reason })
    } else if (event.event === 'restoring') {
      // An upper bound: transaction markers and compaction leave offsets without records.
      const remaining = Number(event.to - event.from)
      metrics.set(
        'ragstream_restore_remaining_records',
        { topology: name, store: event.store, partition: event.partition },
        remaining,
      )
    } else if (event.event === 'restored') {
      metrics.inc('ragstream_restore_records_total', { topology: name, store: event.store }, event.records)
      metrics.set(
        'ragstream_restore_remaining_records',
        { topology: name, store: event.store, partition: event.partition },
        0,
      )
    }
    chain.onEvent?.(event)
  }

  return { topology: wrapped, onEvent, onBatchStage, counters }
}

export interface SinkCounters {
  batches: number
  upserted: number
  deleted: number
  rejects: number
}

/**
 * The sink's log callback that feeds `metrics` (batch size, commit time, rows) and then `chain`.
 *
 * @example
 * const m = instrumentSink(metrics, config.names.chunkTableName, (e) => stdout.write(`${JSON.stringify(e)}\n`))
 * new PgvectorSink({ ...options, log: m.log })
 */
export function instrumentSink(
  metrics: Metrics,
  table: string,
  chain?: (event: SinkLogEvent) => void,
  /** The writer's index among a process's writers (`ragstream sink --writers N`: one instrumentSink per writer). */
  writer = 0,
): { log: (event: SinkLogEvent) => void; counters: Readonly<SinkCounters> } {
  const counters: SinkCounters = { batches: 0, upserted: 0, deleted: 0, rejects: 0 }
  const labels = { table, writer: String(writer) }
  let begun: { at: number; records: number } | undefined
  const log = (event: SinkLogEvent): void => {
    if (event.event === 'batch-begin') begun = { at: performance.now(), records: event.records }
    else if (event.event === 'batch-committed') {
      if (begun) {
        metrics.observe('ragstream_sink_commit_seconds', labels, (performance.now() - begun.at) / 1000)
        metrics.observe('ragstream_sink_batch_size', labels, begun.records)
      }
      begun = undefined
      if (!event.alreadyCommitted) {
        counters.batches++
        counters.upserted += event.upserted
        counters.deleted += event.deleted
        counters.rejects += event.rejects
        if (event.upserted > 0) metrics.inc('ragstream_sink_rows_total', { ...labels, op: 'upsert' }, event.upserted)
        for (const f of event[COMMITTED_FRESHNESS] ?? []) {
          const version = { topology: f.topology, version: f.version }
          for (const ms of f.lagsMs) metrics.observe('ragstream_event_to_visible_seconds', version, ms / 1000)
          for (const ms of f.appendLagsMs) metrics.observe('ragstream_append_to_visible_seconds', version, ms / 1000)
        }
        if (event.deleted > 0) metrics.inc('ragstream_sink_rows_total', { ...labels, op: 'delete' }, event.deleted)
      }
    } else if (event.event === 'fenced' || event.event === 'retry') begun = undefined
    chain?.(event)
  }
  return { log, counters }
}

/**
 * Observes end-to-end freshness (visible_at − source_ts) of rows the sink wrote since the last call,
 * read from Postgres: the analysts' own definition of "visible". Reads at most `limit` rows a call.
 */
export function freshnessExporter(
  client: pg.Client,
  table: string,
  tableLabel: string,
  metrics: Metrics,
  limit = 20_000,
): () => Promise<void> {
  let since = new Date(0)
  return async () => {
    const r = await client.query<{ visible_at: Date; lag: number }>(
      `SELECT visible_at, extract(epoch FROM visible_at - source_ts)::float8 AS lag FROM ${table} WHERE visible_at > $1 ORDER BY visible_at LIMIT ${limit}`,
      [since],
    )
    for (const row of r.rows)
      metrics.observe('ragstream_freshness_seconds', { table: tableLabel }, Math.max(0, row.lag))
    if (r.rows.length > 0) since = r.rows[r.rows.length - 1].visible_at
  }
}

/**
 * Sets `ragstream_consumer_lag` for a group's partitions (call periodically), and with a `clock` the
 * group's lag in seconds: `ragstream_consumer_lag_seconds` (oldest unprocessed record) and
 * `ragstream_consumer_drain_seconds` (at the rate since the previous call).
 */
export function lagExporter(
  admin: Admin,
  metrics: Metrics,
  component: string,
  groupId: string,
  topics: () => readonly string[],
  clock?: LagClock,
): () => Promise<void> {
  return async () => {
    const lags = await consumerLag(admin, groupId, topics())
    for (const l of lags)
      metrics.set('ragstream_consumer_lag', { component, topic: l.topic, partition: l.partition }, l.lag)
    if (!clock) return
    const seconds = await clock.read(groupId, lags)
    metrics.set('ragstream_consumer_lag_seconds', { component, group: groupId }, seconds.oldestSeconds)
    if (seconds.drainSeconds !== null)
      metrics.set('ragstream_consumer_drain_seconds', { component, group: groupId }, seconds.drainSeconds)
  }
}

/** Runs `tasks` every `intervalMs` (never overlapping, errors reported not thrown) until the returned stop is called. */
export function every(
  intervalMs: number,
  tasks: readonly (() => unknown)[],
  onError: (error: unknown) => void = () => {},
): () => Promise<void> {
  let stopped = false
  let running: Promise<void> = Promise.resolve()
  const tick = async (): Promise<void> => {
    for (const task of tasks) {
      try {
        await task()
      } catch (error) {
        onError(error)
      }
    }
  }
  const timer = setInterval(() => {
    if (stopped) return
    running = running.then(tick)
  }, intervalMs)
  timer.unref()
  return async () => {
    stopped = true
    clearInterval(timer)
    await running
    await tick() // a final reading, so short runs still export what they did
  }
}

/**
 * Polls the consumer lag of a processor's group on its external source topics into
 * `ragstream_consumer_lag{component="processor"}` every `intervalMs`; the returned function stops it.
 * For `ragstream run --metrics-port`, which has the compiled topology but no Admin client.
 */
export function exportProcessorLag(
  metrics: Metrics,
  brokers: readonly string[],
  topology: ProcessorTopology,
  intervalMs = 2000,
): () => Promise<void> {
  const internal = new Set(topology.topics.filter((t) => t.role !== 'source').map((t) => t.name))
  const sources = topology.sourceTopics.filter((t) => !internal.has(t))
  const admin = new AdminClient({ clientId: `${topology.applicationId}-lag`, bootstrapBrokers: [...brokers] })
  const clock = new LagClock(brokers, `${topology.applicationId}-lag-seconds`)
  const stop = every(intervalMs, [
    lagExporter(admin, metrics, 'processor', topology.applicationId, () => sources, clock),
  ])
  return async () => {
    await stop()
    await Promise.allSettled([admin.close(), clock.close()])
  }
}
