import { loadConfig } from '../../config/file.ts'
import { ConfigError } from '../../errors.ts'
import { createLogger } from '../../observability/logger.ts'
import { Metrics, serveMetrics } from '../../observability/metrics.ts'
import { EXIT, type CommandSpec } from '../command.ts'

function intOption(values: Record<string, unknown>, name: string, min: number): number {
  const raw = String(values[name])
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError([{ path: `--${name}`, message: `expected an integer ≥ ${min}, got '${raw}'` }], 'arguments')
  return n
}

/**
 * `ragstream demo` — the support-copilot topology end to end on the local stack: generator,
 * processor and sink in one process, live progress, then a nearest-neighbour query as an analyst and
 * a forget of one customer with its receipt.
 *
 * @example
 * ```sh
 * npm run demo                                   # installs, starts the stack, runs this
 * ragstream demo --duration 60 --backfill 2000 --rate 50 --metrics-port 9464
 * ragstream demo --no-forget
 * ragstream demo --source kafka                  # envelopes straight to Kafka, no Debezium
 * ```
 */
export const demoCommand: CommandSpec = {
  name: 'demo',
  summary:
    'Run support-copilot end to end: generator → processor → pgvector sink, live progress, a sample SQL query, then a forget with its receipt.',
  options: {
    duration: {
      type: 'string',
      default: '20',
      value: '<s>',
      description: 'seconds of live changes after the backfill, before the query',
    },
    'drain-timeout': {
      type: 'string',
      default: '20',
      value: '<s>',
      description: 'after the live time, seconds to wait for the pipeline to drain before the query and the forget',
    },
    backfill: { type: 'string', default: '500', value: '<n>', description: 'tickets in the initial snapshot' },
    rate: { type: 'string', default: '20', value: '<n/s>', description: 'live changes per second after the backfill' },
    seed: { type: 'string', default: '42', value: '<n>', description: 'generator seed' },
    partitions: { type: 'string', default: '3', value: '<n>', description: 'partitions of the fresh source topics' },
    name: {
      type: 'string',
      default: 'demo-support-copilot',
      value: '<base>',
      description: "base of the demo's Kafka names and Redis keys (demos with other bases leave each other alone)",
    },
    'sql-topology': {
      type: 'string',
      default: 'support_demo',
      value: '<name>',
      description: 'SQL topology of the demo: tables chunks_<name>_r<id>, view rag.<name>',
    },
    'analyst-role': {
      type: 'string',
      default: 'ragstream_demo_analyst',
      value: '<role>',
      description: 'role the sample query runs as (created if missing)',
    },
    'metrics-port': {
      type: 'string',
      value: '<port>',
      description: 'serve Prometheus /metrics of processor and sink on this port (default /metrics/port of the config)',
    },
    source: {
      type: 'string',
      default: 'postgres',
      value: '<postgres|kafka>',
      description:
        'postgres: write the changes as SQL into the CDC source database, captured by Debezium; kafka: Debezium envelopes straight to Kafka',
    },
    'no-forget': {
      type: 'boolean',
      description: 'skip the last step: ragstream forget --wait for the customer with the most rows, and its receipt',
    },
  },
  details: [
    'Each run creates fresh topics (<name>.r<id>.public.tickets, …), a fresh processor application and a new',
    'version of the SQL topology support_demo; the view rag.support_demo is promoted to it and earlier demo',
    'runs (tables, topics, groups, Redis keys) are dropped. Progress, once a second: generated records,',
    'records/s into the processor and rows/s out of the sink, consumer lag of both, freshness p50/p99 of rows',
    'written in the last 30 s split in two: capture (source commit → source topic: source_appended_at −',
    'source_ts) and ragstream (source topic → visible in Postgres: visible_at − source_appended_at), chunk',
    'rows, dead letters, embedding calls vs cache hits; the final line gives the split over the live',
    "changes (the source topics are created with LogAppendTime, so the append is the broker's). Then the",
    'query runs as ragstream_demo_analyst (row-level security applies), and the customer with the most rows',
    "is forgotten as `ragstream forget --wait` does it (the run's own deletions topic",
    '<name>.r<id>.governance.deletions); its receipt shows 0 rows remaining.',
    'Ctrl-C (SIGINT) or SIGTERM stops generator, processor and sink cleanly: the open transaction commits or',
    'aborts, nothing is left hanging. Postgres: RAGSTREAM_POSTGRES_URL must be able to create roles once.',
    'Exit codes: 0 done or interrupted, 1 failure, 69 a service is unavailable, 78 bad option or config.',
  ].join('\n'),
  async run({ values, stdout, stderr, env, config: given }) {
    const config = given ?? loadConfig({ env })
    const durationSeconds = intOption(values, 'duration', 1)
    const drainTimeoutSeconds = intOption(values, 'drain-timeout', 1)
    const backfill = intOption(values, 'backfill', 0)
    const rate = intOption(values, 'rate', 0)
    const seed = intOption(values, 'seed', 0)
    const partitions = intOption(values, 'partitions', 1)
    const source = String(values.source)
    if (source !== 'postgres' && source !== 'kafka')
      throw new ConfigError([{ path: '--source', message: `expected postgres or kafka, got '${source}'` }], 'arguments')
    const port = values['metrics-port'] === undefined ? config.metricsPort : intOption(values, 'metrics-port', 0)
    const { runDemo } = await import('../../ops/demo.ts')
    const metrics = new Metrics()
    const server = port === undefined ? undefined : await serveMetrics(metrics, { port })
    if (server) {
      const address = server.address()
      stderr.write(
        `metrics on http://127.0.0.1:${typeof address === 'object' && address ? address.port : port}/metrics\n`,
      )
    }
    const controller = new AbortController()
    let signals = 0
    const onSignal = (): void => {
      if (++signals === 1) controller.abort()
      else process.exit(EXIT.failure)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    try {
      await runDemo({
        config,
        durationSeconds,
        drainTimeoutSeconds,
        backfill,
        rate,
        seed,
        partitions,
        metrics,
        out: stdout,
        signal: controller.signal,
        log: createLogger('demo', { destination: stderr, level: config.log.level, format: config.log.format }),
        name: String(values.name),
        sqlTopology: String(values['sql-topology']),
        analystRole: String(values['analyst-role']),
        forget: values['no-forget'] !== true,
        source,
      })
      return EXIT.ok
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)))
    }
  },
}
