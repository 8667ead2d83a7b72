/**
 * Prometheus metrics for the processor and the sink. Every family is declared once in
 * `METRIC_FAMILIES` (name, type, labels, help); `docs/metrics.md` documents each and a test keeps
 * the two in step. Each process owns one `Metrics` (its own registry, never prom-client's global one,
 * so several instances can live in one test process).
 */
import { RagstreamError } from '../errors.ts'
import { createServer, type Server } from 'node:http'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const FRESHNESS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900]
/** Finer at the low end than FRESHNESS_BUCKETS: the goals are 100 ms idle and 300 ms under load. */
const EVENT_TO_VISIBLE_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30, 60, 300]
const SIZE_BUCKETS = [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000]

export const METRIC_FAMILIES = {
  ragstream_records_in_total: { type: 'counter', labels: ['topology', 'node'], help: 'Records read per source node.' },
  ragstream_records_out_total: {
    type: 'counter',
    labels: ['topology', 'node'],
    help: 'Records produced per sink node.',
  },
  ragstream_dead_letter_records_total: {
    type: 'counter',
    labels: ['topology', 'node', 'code'],
    help: 'Records sent to the dead-letter topic, by node and error code.',
  },
  ragstream_consumer_lag: {
    type: 'gauge',
    labels: ['component', 'topic', 'partition'],
    help: 'Records between the committed position and the end of each input partition.',
  },
  ragstream_consumer_lag_seconds: {
    type: 'gauge',
    labels: ['component', 'group'],
    help: 'Age of the oldest record the group has not processed yet (0 when caught up): the autoscaling signal.',
  },
  ragstream_consumer_drain_seconds: {
    type: 'gauge',
    labels: ['component', 'group'],
    help: "Seconds to drain the group's lag at the rate it committed over the last interval (absent while unknown).",
  },
  ragstream_transaction_commit_seconds: {
    type: 'histogram',
    labels: ['topology'],
    help: 'Time to commit one Kafka transaction (produce, offsets, end).',
    buckets: LATENCY_BUCKETS,
  },
  ragstream_transactions_aborted_total: {
    type: 'counter',
    labels: ['topology', 'reason'],
    help: 'Kafka transactions aborted, by reason.',
  },
  ragstream_restore_records_total: {
    type: 'counter',
    labels: ['topology', 'store'],
    help: 'Changelog records replayed into state stores.',
  },
  ragstream_restore_remaining_records: {
    type: 'gauge',
    labels: ['topology', 'store', 'partition'],
    help: 'Changelog records left to replay before a store partition is ready.',
  },
  ragstream_redactions_total: {
    type: 'counter',
    labels: ['topology', 'node', 'detector'],
    help: 'Values redacted, by node (a govern node, or source:<topic> for a redactAtSource decoder) and detector (a detector kind or field:<path>).',
  },
  ragstream_governed_rows_total: {
    type: 'counter',
    labels: ['topology', 'node', 'outcome'],
    help: 'Row changes decided by a govern node, by outcome: emitted, denied, suppressed (forgotten subject) or deleted.',
  },
  ragstream_deletion_requests_applied_total: {
    type: 'counter',
    labels: ['topology', 'node'],
    help: 'Deletion requests applied by a govern node (one per request and partition).',
  },
  ragstream_entities_forgotten_total: {
    type: 'counter',
    labels: ['topology', 'node'],
    help: 'Indexed entities removed by deletion requests.',
  },
  ragstream_table_resets_total: {
    type: 'counter',
    labels: ['topology', 'table', 'kind'],
    help: 'Resets of a CDC table applied, per partition: kind truncate (op=t) or snapshot (a completed blocking snapshot that removed rows or not).',
  },
  ragstream_table_reset_rows_total: {
    type: 'counter',
    labels: ['topology', 'table', 'kind'],
    help: 'Rows of a CDC table removed by its resets (truncate or snapshot).',
  },
  ragstream_embedding_calls_total: {
    type: 'counter',
    labels: ['model'],
    help: 'Successful calls to the embedding service.',
  },
  ragstream_embedding_failures_total: {
    type: 'counter',
    labels: ['model', 'code'],
    help: 'Calls to the embedding service that failed after their retries, by error code.',
  },
  ragstream_embedding_retries_total: {
    type: 'counter',
    labels: ['model'],
    help: 'Attempts beyond the first that embedding calls needed (429, 5xx, timeouts).',
  },
  ragstream_embedding_items_total: { type: 'counter', labels: ['model'], help: 'Texts embedded by successful calls.' },
  ragstream_embedding_tokens_total: {
    type: 'counter',
    labels: ['model'],
    help: 'Tokens of successful calls: billed when the service reports them, else approximate.',
  },
  ragstream_embedding_cache_hits_total: {
    type: 'counter',
    labels: ['model'],
    help: 'Distinct texts whose embedding came from the cache (no call).',
  },
  ragstream_embedding_cache_misses_total: {
    type: 'counter',
    labels: ['model'],
    help: 'Distinct texts the cache did not hold (embedded by a call); hit rate = hits / (hits + misses).',
  },
  ragstream_embedding_cache_evictions_total: {
    type: 'counter',
    labels: ['model'],
    help: "Cache entries evicted by the cache's bound (maxEntries) to make room for new vectors.",
  },
  ragstream_embedding_cache_write_failures_total: {
    type: 'counter',
    labels: ['model'],
    help: "Writes of the cache's write-behind queue that failed (their vectors are queued again; no batch fails).",
  },
  ragstream_embedding_cache_dropped_total: {
    type: 'counter',
    labels: ['model'],
    help: 'Vectors the cache gave up writing (queue over its bound, or unwritten at close): each costs a re-embed.',
  },
  ragstream_embedding_cpu_seconds_total: {
    type: 'counter',
    labels: ['model'],
    help: 'CPU time local models spent embedding (worker threads): the cost of a local model.',
  },
  ragstream_embedding_latency_seconds: {
    type: 'histogram',
    labels: ['model'],
    help: 'Latency of one embedding call, retries included (successful calls).',
    buckets: LATENCY_BUCKETS,
  },
  ragstream_embedding_throttled_seconds_total: {
    type: 'counter',
    labels: ['model'],
    help: 'Time spent waiting on the embedding budget guard.',
  },
  ragstream_sink_batch_size: {
    type: 'histogram',
    labels: ['table', 'writer'],
    help: 'Chunk events written per sink transaction.',
    buckets: SIZE_BUCKETS,
  },
  ragstream_sink_commit_seconds: {
    type: 'histogram',
    labels: ['table', 'writer'],
    help: 'Time to write and commit one sink transaction.',
    buckets: LATENCY_BUCKETS,
  },
  ragstream_sink_rows_total: {
    type: 'counter',
    labels: ['table', 'writer', 'op'],
    help: 'Rows upserted or deleted by the sink.',
  },
  ragstream_freshness_seconds: {
    type: 'histogram',
    labels: ['table'],
    help: 'End-to-end freshness: source change timestamp to visible in PostgreSQL.',
    buckets: FRESHNESS_BUCKETS,
  },
  ragstream_event_to_visible_seconds: {
    type: 'histogram',
    labels: ['topology', 'version'],
    help: "Freshness measured at the sink's commit: the commit minus the time the change that made the row version happened at its source.",
    buckets: EVENT_TO_VISIBLE_BUCKETS,
  },
  ragstream_append_to_visible_seconds: {
    type: 'histogram',
    labels: ['topology', 'version'],
    help: "Ragstream's part of freshness, at the sink's commit: the commit minus the time the change that made the row version was appended to its source topic (rows that carry it).",
    buckets: EVENT_TO_VISIBLE_BUCKETS,
  },
} as const satisfies Record<
  string,
  { type: 'counter' | 'gauge' | 'histogram'; labels: readonly string[]; help: string; buckets?: readonly number[] }
>

export type MetricName = keyof typeof METRIC_FAMILIES
type Family<N extends MetricName> = (typeof METRIC_FAMILIES)[N]
type LabelsOf<N extends MetricName> = Record<Family<N>['labels'][number], string | number>
type Instrument = Counter<string> | Gauge<string> | Histogram<string>

export class Metrics {
  readonly registry: Registry
  #instruments = new Map<MetricName, Instrument>()

  constructor(options: { defaultMetrics?: boolean } = {}) {
    this.registry = new Registry()
    for (const [name, spec] of Object.entries(METRIC_FAMILIES) as [MetricName, Family<MetricName>][]) {
      const common = { name, help: spec.help, labelNames: [...spec.labels], registers: [this.registry] }
      const instrument =
        spec.type === 'counter'
          ? new Counter(common)
          : spec.type === 'gauge'
            ? new Gauge(common)
            : new Histogram({ ...common, buckets: [...('buckets' in spec ? spec.buckets : LATENCY_BUCKETS)] })
      this.#instruments.set(name, instrument)
    }
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'ragstream_process_' })
  }

  inc<N extends MetricName>(name: N, labels: LabelsOf<N>, value = 1): void {
    ;(this.#instruments.get(name) as Counter<string>).inc(labels, value)
  }

  set<N extends MetricName>(name: N, labels: LabelsOf<N>, value: number): void {
    ;(this.#instruments.get(name) as Gauge<string>).set(labels, value)
  }

  observe<N extends MetricName>(name: N, labels: LabelsOf<N>, value: number): void {
    ;(this.#instruments.get(name) as Histogram<string>).observe(labels, value)
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics()
  }
}

/**
 * Serves `GET /metrics` (Prometheus text) and `GET /healthz` on a loopback port by default.
 * Port 0 picks a free port; the returned server's address tells which.
 */
export async function serveMetrics(
  metrics: Metrics,
  options: { port: number; host?: string; /** The option that chose the port, named in errors. */ path?: string },
): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.url === '/metrics') {
      metrics.text().then(
        (body) => {
          response.writeHead(200, { 'content-type': metrics.registry.contentType })
          response.end(body)
        },
        (error: Error) => {
          response.writeHead(500, { 'content-type': 'text/plain' })
          response.end(error.message)
        },
      )
    } else if (request.url === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' })
      response.end('ok\n')
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' })
      response.end('try /metrics or /healthz\n')
    }
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EADDRINUSE' && error.code !== 'EACCES') return reject(error)
      reject(
        new RagstreamError(
          'RS_CONFIG_INVALID',
          `cannot serve metrics on ${host}:${options.port}: ${error.code === 'EADDRINUSE' ? 'the port is in use' : 'permission denied'}`,
          {
            context: { path: options.path ?? '/metrics/port' },
            hint: `choose another port, or 0 for any free one (${options.path ?? '--metrics-port'} 0); the chosen port is logged`,
            cause: error,
          },
        ),
      )
    })
    server.listen(options.port, host, resolve)
  })
  return server
}
