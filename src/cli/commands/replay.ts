import type { App } from '../../app/app.ts'
import { loadApp } from '../../app/load.ts'
import { VERSION_PATTERN } from '../../app/naming.ts'
import { loadConfig } from '../../config/file.ts'
import { ConfigError, type Problem } from '../../errors.ts'
import type { ProviderEmbeddingConfig } from '../../embedding/config.ts'
import { isLocalModelId, LOCAL_MODELS } from '../../embedding/models.ts'
import { createLogger } from '../../observability/logger.ts'
import { Metrics, serveMetrics } from '../../observability/metrics.ts'
import { EXIT, type CommandSpec } from '../command.ts'
import { DEPLOYMENT_OPTIONS, str } from './status.ts'

/**
 * `ragstream replay <topology> --to-version v2` — builds a new version beside the serving one.
 *
 * @example
 * ```sh
 * ragstream replay support-copilot --to-version v2                       # same model: no embedding calls
 * ragstream replay support-copilot --to-version v3 --from 2026-11-01T00:00:00Z \
 *   --embedding openai --embedding-model text-embedding-3-small          # RAGSTREAM_SINK_DIMENSIONS=1536
 * ragstream promote support-copilot v2 --drop-old
 * ```
 */
export const replayCommand: CommandSpec = {
  name: 'replay',
  summary:
    'Build a new version of a topology (new application id, chunk topic and table) beside the serving one, with progress and ETA.',
  args: '<topology>',
  options: {
    ...DEPLOYMENT_OPTIONS,
    'to-version': {
      type: 'string',
      value: '<v>',
      description: 'the version to build, e.g. v2 (required; must not be the serving one)',
    },
    from: {
      type: 'string',
      value: '<earliest|ISO time>',
      default: 'earliest',
      description: 'where each source partition starts',
    },
    bulk: {
      type: 'boolean',
      description:
        'load the new table without its vector index, then build the index once (faster for large replays; promotable only after)',
    },
    'maintenance-work-mem': {
      type: 'string',
      value: '<size>',
      default: '512MB',
      description: 'with --bulk: maintenance_work_mem of the index build (the HNSW graph should fit)',
    },
    'parallel-workers': {
      type: 'string',
      value: '<n>',
      default: '2',
      description: 'with --bulk: max_parallel_maintenance_workers of the index build',
    },
    follow: {
      type: 'boolean',
      description: 'keep running after catching up, so the new version stays fresh (Ctrl-C stops)',
    },
    embedding: {
      type: 'string',
      value: '<hashing|local|openai>',
      default: 'hashing',
      description:
        'embedding provider of the new version (local: an ONNX model in worker threads, npm run setup installs it)',
    },
    'embedding-model': {
      type: 'string',
      value: '<model>',
      description: `with --embedding openai: the model (required); with local: ${Object.keys(LOCAL_MODELS).join(', ')} (default ${Object.keys(LOCAL_MODELS)[0]})`,
    },
    'embedding-url': {
      type: 'string',
      value: '<url>',
      description: 'with --embedding openai: base URL of an OpenAI-compatible API (key in OPENAI_API_KEY)',
    },
    'metrics-port': {
      type: 'string',
      value: '<port>',
      description: "serve Prometheus /metrics of the replay's processor and sink (default /metrics/port of the config)",
    },
  },
  details: [
    'Names of version vN: application id <base>-vN, chunk topic rag.chunks.<base>.vN, table chunks_<sql>_vN,',
    "sink group ragstream-sink.<sql>.vN (v1 keeps the default exports' names). The view keeps reading the",
    'serving version until `ragstream promote`. Embeddings are cached by (model, content hash) across versions:',
    'with an unchanged model and chunker the replay embeds nothing (the provider is called once at start, to',
    'check it answers). Dimensions come from /sink/dimensions (RAGSTREAM_SINK_DIMENSIONS).',
    'Without --follow the replay stops once caught up with where the sources ended when it began; run',
    '`ragstream run` and `ragstream sink` for the new version (docs/operations.md) to keep it fresh.',
    'Exit codes: 0 caught up (or stopped by Ctrl-C), 1 failure, 69 a service is unavailable, 78 bad arguments.',
  ].join('\n'),
  async run({ positionals, values, stdout, stderr, env, config: given }) {
    const config = given ?? loadConfig({ env })
    const problems: Problem[] = []
    const topology = positionals[0]
    if (topology === undefined || positionals.length > 1)
      problems.push({ path: '<topology>', message: 'exactly one topology name is required' })
    const toVersion = str(values, 'to-version')
    if (toVersion === undefined) problems.push({ path: '--to-version', message: 'required' })
    else if (!VERSION_PATTERN.test(toVersion))
      problems.push({
        path: '--to-version',
        message: `expected a version like v2 (lower-case letters, digits, _; at most 16), got ${JSON.stringify(toVersion)}`,
      })
    const fromRaw = str(values, 'from') ?? 'earliest'
    const from = fromRaw === 'earliest' ? 'earliest' : new Date(fromRaw)
    if (from !== 'earliest' && (!/^\d{4}-\d\d-\d\d/.test(fromRaw) || Number.isNaN(from.getTime())))
      problems.push({ path: '--from', message: 'expected earliest or an ISO 8601 timestamp' })
    const kind = str(values, 'embedding')
    let embedding: ProviderEmbeddingConfig | undefined
    if (kind === 'local') {
      const model = str(values, 'embedding-model') ?? Object.keys(LOCAL_MODELS)[0]
      if (!isLocalModelId(model))
        problems.push({ path: '--embedding-model', message: `expected one of ${Object.keys(LOCAL_MODELS).join(', ')}` })
      else if (LOCAL_MODELS[model].dimensions !== config.sink.dimensions)
        problems.push({
          path: '--embedding-model',
          message: `${model} embeds into ${LOCAL_MODELS[model].dimensions} dimensions; set RAGSTREAM_SINK_DIMENSIONS=${LOCAL_MODELS[model].dimensions}`,
        })
      else embedding = { kind: 'local', model }
    } else if (kind === 'openai') {
      const model = str(values, 'embedding-model')
      if (!model) problems.push({ path: '--embedding-model', message: 'required with --embedding openai' })
      else
        embedding = {
          kind: 'openai',
          model,
          dimensions: config.sink.dimensions,
          ...(str(values, 'embedding-url') ? { baseUrl: str(values, 'embedding-url') } : {}),
        }
    } else if (kind !== 'hashing') problems.push({ path: '--embedding', message: 'expected hashing, local or openai' })
    const portRaw = str(values, 'metrics-port')
    const port = portRaw === undefined ? config.metricsPort : Number(portRaw)
    if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535))
      problems.push({ path: '--metrics-port', message: 'expected an integer from 0 to 65535' })
    let app: App | undefined
    if (topology !== undefined)
      app = await loadApp(topology, config.apps).catch((error: unknown) => {
        if (!(error instanceof ConfigError)) throw error
        problems.push(...error.problems)
        return undefined
      })
    if (problems.length > 0 || app === undefined) throw new ConfigError(problems, 'arguments')

    const { replay } = await import('../../ops/replay.ts')
    const metrics = new Metrics()
    const server = port === undefined ? undefined : await serveMetrics(metrics, { port })
    const controller = new AbortController()
    const onSignal = (): void => controller.abort()
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    try {
      const result = await replay({
        app,
        toVersion: toVersion!,
        from,
        follow: Boolean(values.follow),
        bulk: Boolean(values.bulk),
        indexBuild: {
          maintenanceWorkMem: str(values, 'maintenance-work-mem'),
          parallelWorkers:
            str(values, 'parallel-workers') === undefined ? undefined : Number(str(values, 'parallel-workers')),
        },
        embedding,
        metrics,
        config,
        log: createLogger('replay', { destination: stderr, level: config.log.level, format: config.log.format }),
        prefix: str(values, 'prefix'),
        name: str(values, 'name'),
        sqlTopology: str(values, 'sql-topology'),
        out: stdout as NodeJS.WritableStream & { isTTY?: boolean },
        signal: controller.signal,
      })
      const d = result.deployment
      stdout.write(
        `${d.sink.topology}@${d.version}: ${result.rows} rows in ${d.sink.names.chunkTable} from ${result.records} records in ${result.seconds.toFixed(1)}s; ` +
          `embedding: ${result.embedding.cacheMisses} texts embedded, ${result.embedding.cacheHits} from the cache, ${result.embedding.calls} provider calls (the start-up check included)${result.embedding.cpuMs > 0 ? `, ${(result.embedding.cpuMs / 1000).toFixed(1)} CPU-s of local model` : ''}\n`,
      )
      if (result.caughtUp)
        stdout.write(
          `next: ragstream promote ${topology} ${d.version}${str(values, 'sql-topology') ? ` --sql-topology ${str(values, 'sql-topology')}` : ''}   (then --drop-old, or promote back to roll back)\n`,
        )
      else stderr.write('stopped before catching up; run the same command again to continue\n')
      return EXIT.ok
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)))
    }
  },
}
