import { loadConfig } from '../../config/file.ts'
import { ConfigError } from '../../errors.ts'
import { EXIT, type CommandSpec } from '../command.ts'
import { jsonSafe } from '../../security/terminal.ts'

/** Options that name a deployment of a reference topology; shared by status, replay and promote. */
export const DEPLOYMENT_OPTIONS = {
  prefix: {
    type: 'string',
    value: '<prefix>',
    description: 'source topic prefix (default RAGSTREAM_SUPPORT_PREFIX / RAGSTREAM_KB_PREFIX, else support / kb)',
  },
  name: {
    type: 'string',
    value: '<base>',
    description:
      'base of the Kafka names: application id <base>[-<version>], chunk topic rag.chunks.<base>[.<version>] (default the topology)',
  },
  'sql-topology': {
    type: 'string',
    value: '<name>',
    description: 'topology name in SQL: tables chunks_<name>_<version>, view rag.<name> (default the topology)',
  },
} as const

export function str(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name]
  return typeof v === 'string' ? v : undefined
}

/**
 * `ragstream status <topology>` — lag, freshness, store checkpoints and the active index version.
 *
 * @example
 * ```sh
 * ragstream status support-copilot
 * ragstream status support-copilot --version v2 --format json | jq '.versions[0].processor.lag'
 * ```
 */
export const statusCommand: CommandSpec = {
  name: 'status',
  summary:
    'Show consumer lag (processor and sink, per partition), freshness, store checkpoints and the active index version.',
  args: '<topology>',
  options: {
    ...DEPLOYMENT_OPTIONS,
    version: {
      type: 'string',
      value: '<v>',
      description: 'only this version (default: every version in Postgres, v1 when none)',
    },
    format: { type: 'string', value: '<text|json>', default: 'text', description: 'output format' },
    'freshness-window': {
      type: 'string',
      value: '<s>',
      description: 'freshness percentiles over rows made visible in the last <s> seconds, or all (default: 300)',
    },
  },
  details: [
    "Topologies: support-copilot, knowledge-base. Lag is the read_committed end offset minus the group's",
    'committed offset per partition (a partition the group never committed counts from the log start).',
    'Freshness is visible_at − source_ts in Postgres, read as the sink role, and split at source_appended_at',
    'into capture (source commit → source topic) and ragstream (source topic → visible). Store checkpoints',
    "are the next changelog offsets the Redis copies reflect, next to the changelogs' ends.",
    'Exit codes: 0 reported (warnings name services that could not be read), 1 failure, 78 bad arguments.',
  ].join('\n'),
  async run({ positionals, values, stdout, env, config: given }) {
    const config = given ?? loadConfig({ env })
    const topology = positionals[0]
    const format = str(values, 'format') ?? 'text'
    const problems = []
    if (topology === undefined || positionals.length > 1)
      problems.push({ path: '<topology>', message: 'exactly one topology name is required' })
    if (format !== 'text' && format !== 'json') problems.push({ path: '--format', message: 'expected text or json' })
    const window = str(values, 'freshness-window')
    if (window !== undefined && window !== 'all' && !(Number.isInteger(Number(window)) && Number(window) > 0))
      problems.push({ path: '--freshness-window', message: 'expected an integer ≥ 1 (seconds) or all' })
    if (problems.length > 0) throw new ConfigError(problems, 'arguments')
    const { topologyStatus, formatStatus } = await import('../../ops/status.ts')
    const status = await topologyStatus({
      app: await (await import('../../app/load.ts')).loadApp(topology!, config.apps),
      config,
      prefix: str(values, 'prefix'),
      name: str(values, 'name'),
      sqlTopology: str(values, 'sql-topology'),
      version: str(values, 'version'),
      freshnessWindowSeconds: window === undefined ? undefined : window === 'all' ? null : Number(window),
    })
    stdout.write(format === 'json' ? `${jsonSafe(JSON.stringify(status, null, 2))}\n` : formatStatus(status))
    return EXIT.ok
  },
}
