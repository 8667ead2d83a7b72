/**
 * The operator's configuration: a JSON file (`--config <file.json>`) plus `RAGSTREAM_*` environment
 * variables, validated once into one `ConfigError` that names every bad field by its path
 * (`/sink/dimensions: expected an integer ≥ 1`).
 *
 * `CONFIG_FIELDS` is the single spec: path in the file, environment variable, parser, default and the
 * line docs/operations.md shows (a test keeps the two in step). Precedence, lowest first: default,
 * file, environment, command-line option. A field set in the file reaches commands that read the
 * environment (`run`, `sink`, `generate`, …) as its variable, so one file configures every command.
 *
 * @example
 * ```json
 * { "kafka": { "brokers": ["10.0.0.5:9092"] }, "sink": { "dimensions": 384 }, "metrics": { "port": 9464 } }
 * ```
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve as resolvePath } from 'node:path'
import { ConfigError, type Problem } from '../errors.ts'
import { ENDPOINT_DEFAULTS, endpointsFromEnv, type Endpoints } from './endpoints.ts'

type Parsed = string | number | readonly string[] | undefined

interface FieldSpec {
  readonly path: string
  readonly env: string
  readonly default?: string
  readonly description: string
  /** Parses the raw value (a file value or an environment string); returns a message when invalid. */
  parse(raw: unknown): { value: Parsed } | { error: string }
}

const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/
const IDENT = /^[a-z_][a-z0-9_]*$/

function urlField(
  path: string,
  env: string,
  schemes: readonly string[],
  description: string,
  defaultValue?: string,
): FieldSpec {
  return {
    path,
    env,
    description,
    default: defaultValue,
    parse(raw) {
      if (typeof raw !== 'string' || raw.trim() === '') return { error: `expected a ${schemes.join(' or ')} URL` }
      try {
        const url = new URL(raw.trim())
        if (!schemes.includes(url.protocol.replace(/:$/, '')))
          return { error: `expected a ${schemes.join(' or ')} URL, got scheme ${url.protocol}` }
      } catch {
        return { error: `expected a ${schemes.join(' or ')} URL` }
      }
      return { value: raw.trim() }
    },
  }
}

function hostPortsField(path: string, env: string, description: string, defaultValue: string): FieldSpec {
  return {
    path,
    env,
    description,
    default: defaultValue,
    parse(raw) {
      const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined
      if (!list || !list.every((s) => typeof s === 'string'))
        return { error: 'expected host:port entries (a JSON array, or comma-separated)' }
      const entries = (list as string[]).map((s) => s.trim()).filter(Boolean)
      const bad = entries.find((s) => !HOST_PORT.test(s) || Number(s.slice(s.lastIndexOf(':') + 1)) > 65535)
      if (entries.length === 0) return { error: 'expected at least one host:port' }
      if (bad !== undefined) return { error: `expected host:port, got ${JSON.stringify(bad)}` }
      return { value: entries }
    },
  }
}

function intField(
  path: string,
  env: string,
  min: number,
  max: number,
  description: string,
  defaultValue?: string,
): FieldSpec {
  return {
    path,
    env,
    description,
    default: defaultValue,
    parse(raw) {
      const n =
        typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw.trim()) : Number.NaN
      if (!Number.isInteger(n) || n < min || n > max)
        return {
          error:
            max === Number.MAX_SAFE_INTEGER
              ? `expected an integer ≥ ${min}`
              : `expected an integer from ${min} to ${max}`,
        }
      return { value: n }
    },
  }
}

function identField(path: string, env: string, description: string, defaultValue: string): FieldSpec {
  return {
    path,
    env,
    description,
    default: defaultValue,
    parse(raw) {
      if (typeof raw !== 'string' || !IDENT.test(raw) || Buffer.byteLength(raw) > 63)
        return { error: 'expected a SQL identifier: [a-z_][a-z0-9_]*, at most 63 bytes' }
      return { value: raw }
    },
  }
}

function enumField(
  path: string,
  env: string,
  values: readonly string[],
  description: string,
  defaultValue?: string,
): FieldSpec {
  return {
    path,
    env,
    description,
    default: defaultValue,
    parse(raw) {
      if (typeof raw !== 'string' || !values.includes(raw)) return { error: `expected one of ${values.join(', ')}` }
      return { value: raw }
    },
  }
}

/** Every configuration field: where it lives in the file, its variable, default and meaning. */
export const CONFIG_FIELDS: readonly FieldSpec[] = [
  hostPortsField(
    '/kafka/brokers',
    'RAGSTREAM_KAFKA_BROKERS',
    'Kafka bootstrap brokers',
    ENDPOINT_DEFAULTS.RAGSTREAM_KAFKA_BROKERS,
  ),
  urlField(
    '/schemaRegistry/url',
    'RAGSTREAM_SCHEMA_REGISTRY_URL',
    ['http', 'https'],
    'Confluent-compatible schema registry',
    ENDPOINT_DEFAULTS.RAGSTREAM_SCHEMA_REGISTRY_URL,
  ),
  urlField(
    '/redis/url',
    'RAGSTREAM_REDIS_URL',
    ['redis', 'rediss'],
    'Redis: state stores and the embedding cache',
    ENDPOINT_DEFAULTS.RAGSTREAM_REDIS_URL,
  ),
  hostPortsField(
    '/redis/clusterNodes',
    'RAGSTREAM_REDIS_CLUSTER_NODES',
    'Redis Cluster nodes (`run --redis-cluster`)',
    ENDPOINT_DEFAULTS.RAGSTREAM_REDIS_CLUSTER_NODES,
  ),
  urlField(
    '/postgres/url',
    'RAGSTREAM_POSTGRES_URL',
    ['postgres', 'postgresql'],
    'PostgreSQL as an administrator: one-time bootstrap of roles and schemas (demo), default for every role',
    ENDPOINT_DEFAULTS.RAGSTREAM_POSTGRES_URL,
  ),
  urlField(
    '/postgres/ownerUrl',
    'RAGSTREAM_POSTGRES_OWNER_URL',
    ['postgres', 'postgresql'],
    'PostgreSQL as the owner role (migrate, promote, drop); default: /postgres/url with the owner role as user',
  ),
  urlField(
    '/postgres/sinkUrl',
    'RAGSTREAM_POSTGRES_SINK_URL',
    ['postgres', 'postgresql'],
    'PostgreSQL as the sink role; default: /postgres/url with the sink role as user',
  ),
  intField(
    '/sink/dimensions',
    'RAGSTREAM_SINK_DIMENSIONS',
    1,
    Number.MAX_SAFE_INTEGER,
    'embedding dimensions of the chunk tables',
    '384',
  ),
  identField('/sink/schema', 'RAGSTREAM_SINK_SCHEMA', 'schema of the chunk tables', 'ragstream'),
  identField('/sink/viewSchema', 'RAGSTREAM_SINK_VIEW_SCHEMA', 'schema of the analyst views', 'rag'),
  identField(
    '/sink/ownerRole',
    'RAGSTREAM_SINK_OWNER_ROLE',
    'role that owns the tables and runs migrations',
    'ragstream_owner',
  ),
  identField('/sink/sinkRole', 'RAGSTREAM_SINK_ROLE', 'role the sink writes as (DML only)', 'ragstream_sink'),
  intField(
    '/embedding/cache/maxEntries',
    'RAGSTREAM_EMBEDDING_CACHE_MAX_ENTRIES',
    0,
    Number.MAX_SAFE_INTEGER,
    'embedding cache: at most this many vectors per model in Redis, least recently used evicted first (0 = no limit)',
    '1000000',
  ),
  intField(
    '/embedding/cache/ttlSeconds',
    'RAGSTREAM_EMBEDDING_CACHE_TTL_SECONDS',
    0,
    Number.MAX_SAFE_INTEGER,
    'embedding cache: vectors unused for this long expire; a hit renews them (unset or 0 = never)',
  ),
  {
    path: '/embedding/modelsDir',
    env: 'RAGSTREAM_MODELS_DIR',
    description:
      'folder of the local embedding models (`npm run setup` fills it); default `$RAGSTREAM_STACK_DIR/models`, else `.stack/models`',
    parse: (raw) =>
      typeof raw === 'string' && raw.trim() !== '' ? { value: raw.trim() } : { error: 'expected a folder path' },
  },
  intField(
    '/metrics/port',
    'RAGSTREAM_METRICS_PORT',
    0,
    65_535,
    'Prometheus /metrics port of demo and replay (0 = any free port; unset = no endpoint)',
  ),
  enumField(
    '/log/level',
    'RAGSTREAM_LOG_LEVEL',
    ['trace', 'debug', 'info', 'warn', 'error', 'fatal'],
    'log level',
    'info',
  ),
  enumField(
    '/log/format',
    'RAGSTREAM_LOG_FORMAT',
    ['json', 'human', 'auto'],
    'JSON lines, human-readable, or human on a terminal',
    'auto',
  ),
]

export interface RagstreamConfig {
  readonly endpoints: Endpoints
  readonly postgres: { readonly adminUrl: string; readonly ownerUrl: string; readonly sinkUrl: string }
  readonly sink: {
    readonly dimensions: number
    readonly schema: string
    readonly viewSchema: string
    readonly ownerRole: string
    readonly sinkRole: string
  }
  readonly metricsPort: number | undefined
  /**
   * `/apps` of the file: app names → topology files (resolved against the file's directory), so a
   * command takes `reviews` for `src/reviews.ts`.
   */
  readonly apps: Readonly<Record<string, string>>
  readonly log: { readonly level: string; readonly format: 'json' | 'human' | 'auto' }
  /** The environment with every file value filled in (variables already set win): pass it to commands. */
  readonly env: NodeJS.ProcessEnv
}

function lookup(object: unknown, path: string): unknown {
  let at = object
  for (const part of path.split('/').slice(1)) {
    // Own properties only: nothing inherited (`constructor`, `__proto__`) is ever read as a value.
    if (at === null || typeof at !== 'object' || Array.isArray(at) || !Object.hasOwn(at, part)) return undefined
    at = (at as Record<string, unknown>)[part]
  }
  return at
}

/** Paths in the file that no field declares: a typo is a problem, not silently ignored. */
function unknownPaths(object: unknown, prefix = ''): string[] {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) return []
  const out: string[] = []
  for (const [key, value] of Object.entries(object)) {
    const path = `${prefix}/${key}`
    if (CONFIG_FIELDS.some((f) => f.path === path) || path === '/apps') continue
    if (
      CONFIG_FIELDS.some((f) => f.path.startsWith(`${path}/`)) &&
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value)
    )
      out.push(...unknownPaths(value, path))
    else out.push(path)
  }
  return out
}

function readFile(file: string): unknown {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new ConfigError(
      [
        {
          path: '--config',
          message: `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
        },
      ],
      'configuration',
    )
  }
  try {
    const parsed: unknown = JSON.parse(text)
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new Error('the top level must be a JSON object')
    return parsed
  } catch (error) {
    throw new ConfigError(
      [{ path: '--config', message: `${file} is not a JSON object: ${(error as Error).message}` }],
      'configuration',
    )
  }
}

function withUser(url: string, user: string): string {
  const u = new URL(url)
  u.username = user
  u.password = ''
  return u.toString()
}

/**
 * Validates the environment and (optionally) a config file once. Throws one ConfigError listing every
 * problem: file fields by their path, environment variables by path and name.
 */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv } = {}): RagstreamConfig {
  const env = options.env ?? process.env
  const file = options.file === undefined ? undefined : readFile(options.file)
  const problems: Problem[] = []
  for (const path of unknownPaths(file)) problems.push({ path, message: 'unknown field (see docs/operations.md)' })
  const values = new Map<string, Parsed>()
  const merged: NodeJS.ProcessEnv = { ...env }
  for (const field of CONFIG_FIELDS) {
    const fromEnv = env[field.env]?.trim() ? env[field.env] : undefined
    const fromFile = lookup(file, field.path)
    const raw = fromEnv ?? fromFile ?? field.default
    if (raw === undefined) continue
    const parsed = field.parse(raw)
    if ('error' in parsed) {
      problems.push({
        path: fromEnv !== undefined ? `${field.path} (${field.env})` : field.path,
        message: parsed.error,
      })
      continue
    }
    values.set(field.path, parsed.value)
    if (fromEnv === undefined && fromFile !== undefined)
      merged[field.env] = Array.isArray(parsed.value) ? parsed.value.join(',') : String(parsed.value)
  }
  const apps: Record<string, string> = {}
  const listed = lookup(file, '/apps')
  if (listed !== undefined) {
    if (listed === null || typeof listed !== 'object' || Array.isArray(listed))
      problems.push({ path: '/apps', message: 'expected an object of app names to topology files' })
    else
      for (const [name, path] of Object.entries(listed)) {
        if (typeof path !== 'string' || path === '')
          problems.push({ path: `/apps/${name}`, message: 'expected the path of a topology file' })
        else apps[name] = resolvePath(dirname(resolvePath(options.file!)), path)
      }
  }
  if (problems.length > 0)
    throw new ConfigError(
      problems,
      options.file
        ? `configuration (${options.file} and RAGSTREAM_* variables)`
        : 'configuration (RAGSTREAM_* variables)',
    )
  const str = (path: string): string => values.get(path) as string
  const sink = {
    dimensions: values.get('/sink/dimensions') as number,
    schema: str('/sink/schema'),
    viewSchema: str('/sink/viewSchema'),
    ownerRole: str('/sink/ownerRole'),
    sinkRole: str('/sink/sinkRole'),
  }
  const adminUrl = str('/postgres/url')
  return {
    endpoints: endpointsFromEnv(merged),
    postgres: {
      adminUrl,
      ownerUrl: (values.get('/postgres/ownerUrl') as string | undefined) ?? withUser(adminUrl, sink.ownerRole),
      sinkUrl: (values.get('/postgres/sinkUrl') as string | undefined) ?? withUser(adminUrl, sink.sinkRole),
    },
    sink,
    metricsPort: values.get('/metrics/port') as number | undefined,
    apps,
    log: { level: str('/log/level'), format: str('/log/format') as 'json' | 'human' | 'auto' },
    env: merged,
  }
}

/** The docs/operations.md table of every field. */
export function configFieldsMarkdown(): string {
  const rows = CONFIG_FIELDS.map(
    (f) =>
      `| \`${f.path}\` | \`${f.env}\` | ${f.default === undefined ? '—' : `\`${f.default}\``} | ${f.description} |`,
  )
  return ['| field | variable | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n')
}
