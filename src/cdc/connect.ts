/**
 * Kafka Connect's REST API, for the connectors ragstream's stack and tests register: a connector is a
 * checked-in JSON file (stack/connect/connectors/*.json, `${NAME}` placeholders) filled with values
 * and PUT to `/connectors/<name>/config`, which creates or updates it (idempotent).
 */
import { readFileSync } from 'node:fs'
import { RagstreamError } from '../errors.ts'

/** The checked-in connector definitions, by the format they produce. */
export const CONNECTOR_FILES = {
  json: new URL('../../stack/connect/connectors/postgres-json.json', import.meta.url),
  'json-schemaless': new URL('../../stack/connect/connectors/postgres-json-schemaless.json', import.meta.url),
  avro: new URL('../../stack/connect/connectors/postgres-avro.json', import.meta.url),
} as const

export type ConnectorFormat = keyof typeof CONNECTOR_FILES

export interface ConnectorDefinition {
  readonly name: string
  readonly config: Readonly<Record<string, string>>
}

/**
 * Reads a connector JSON and replaces every `${VAR}` with `vars[VAR]`. A placeholder without a
 * value is an error naming it (a connector half-configured would fail later, less clearly).
 */
export function connectorDefinition(file: URL | string, vars: Readonly<Record<string, string>>): ConnectorDefinition {
  const text = readFileSync(file, 'utf8')
  const missing = new Set<string>()
  const filled = text.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name: string) => {
    const value = vars[name]
    if (value === undefined) {
      missing.add(name)
      return ''
    }
    return JSON.stringify(value).slice(1, -1)
  })
  if (missing.size > 0) {
    throw new RagstreamError(
      'RS_CONFIG_INVALID',
      `connector ${String(file)}: no value for ${[...missing].join(', ')}`,
      {
        context: { field: [...missing][0] },
        hint: 'pass every ${VAR} the connector JSON names',
      },
    )
  }
  const parsed = JSON.parse(filled) as { name: string; config: Record<string, string> }
  const config = Object.fromEntries(Object.entries(parsed.config).filter(([k]) => !k.startsWith('_')))
  return { name: parsed.name, config }
}

/** The values a Debezium PostgreSQL connector JSON needs, from a source URL and names. */
export function postgresConnectorVars(options: {
  readonly name: string
  readonly sourceUrl: string
  readonly topicPrefix: string
  readonly tables: readonly string[]
  readonly slot: string
  readonly publication: string
  /** The registry's Confluent-compatible URL (`…/apis/ccompat/v7`); the converter speaks its native API beside it. */
  readonly registryUrl?: string
}): Record<string, string> {
  const url = new URL(options.sourceUrl)
  const vars: Record<string, string> = {
    NAME: options.name,
    SOURCE_HOST: url.hostname,
    SOURCE_PORT: url.port || '5432',
    SOURCE_USER: decodeURIComponent(url.username || 'postgres'),
    SOURCE_PASSWORD: decodeURIComponent(url.password),
    SOURCE_DB: url.pathname.replace(/^\//, ''),
    TOPIC_PREFIX: options.topicPrefix,
    TABLES: options.tables.join(','),
    SLOT: options.slot,
    PUBLICATION: options.publication,
  }
  if (options.registryUrl !== undefined) vars.REGISTRY_API_URL = registryApiUrl(options.registryUrl)
  return vars
}

/** Apicurio's native v2 API beside its Confluent-compatible one (what Apicurio's 2.x converter talks to). */
export function registryApiUrl(ccompatUrl: string): string {
  return ccompatUrl.replace(/\/apis\/ccompat\/v\d+\/?$/, '/apis/registry/v2')
}

/**
 * Settings of a Debezium connector's config under which ragstream's index silently diverges from the
 * source tables, one sentence each (empty: none found): `skipped.operations` unset or listing `t`
 * (Debezium's default), under which a `TRUNCATE` emits nothing; table topics of more than one
 * partition, on which a re-snapshot converges only partly (docs/cdc.md).
 */
export function connectorConfigWarnings(config: Readonly<Record<string, string>>): string[] {
  const warnings: string[] = []
  const skipped = config['skipped.operations']
  const ops = (skipped ?? 't').split(',').map((op) => op.trim())
  if (ops.includes('t')) {
    warnings.push(
      `skipped.operations=${skipped ?? '(unset: Debezium skips t)'}: a TRUNCATE emits nothing and its rows stay indexed; set skipped.operations=none (docs/cdc.md, TRUNCATE and re-snapshots)`,
    )
  }
  const partitions = Number(config['topic.creation.default.partitions'] ?? '1')
  if (partitions > 1) {
    warnings.push(
      `topic.creation.default.partitions=${partitions}: a re-snapshot removes rows deleted while no connector ran only on partitions that receive snapshot reads, some only at their next change; use 1 partition per table topic, or converge by replay (docs/cdc.md, TRUNCATE and re-snapshots)`,
    )
  }
  return warnings
}

export interface ConnectorStatus {
  readonly connector: { readonly state: string; readonly trace?: string }
  readonly tasks: readonly { readonly id: number; readonly state: string; readonly trace?: string }[]
}

export class ConnectClient {
  readonly url: string

  constructor(url: string) {
    this.url = url.replace(/\/+$/, '')
  }

  async #request(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    let response: Response
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch (error) {
      throw new RagstreamError('RS_SERVICE_UNAVAILABLE', `Kafka Connect at ${this.url} did not answer`, {
        context: { service: 'kafka-connect', address: this.url },
        hint: 'start it with `npm run stack:up` (scripts/stack.sh) or set RAGSTREAM_CONNECT_URL',
        cause: error,
      })
    }
    const text = await response.text()
    let json: unknown = text
    try {
      json = text === '' ? null : JSON.parse(text)
    } catch {
      // Connect answers errors as JSON; anything else is kept as text.
    }
    return { status: response.status, json }
  }

  /** Creates the connector, or updates its config (PUT is idempotent). */
  async apply(definition: ConnectorDefinition): Promise<void> {
    const { status, json } = await this.#request(
      'PUT',
      `/connectors/${encodeURIComponent(definition.name)}/config`,
      definition.config,
    )
    if (status >= 300) {
      throw new RagstreamError(
        'RS_CONFIG_INVALID',
        `Kafka Connect refused connector ${definition.name} (${status}): ${JSON.stringify(json)}`,
        { context: { field: definition.name, service: 'kafka-connect' } },
      )
    }
  }

  async status(name: string): Promise<ConnectorStatus | undefined> {
    const { status, json } = await this.#request('GET', `/connectors/${encodeURIComponent(name)}/status`)
    return status === 404 ? undefined : (json as ConnectorStatus)
  }

  /** Waits until the connector and each of its tasks are RUNNING (or `signal` aborts); a FAILED task fails at once with its trace. */
  async waitRunning(name: string, timeoutMs = 60_000, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last: ConnectorStatus | undefined
    for (;;) {
      if (signal?.aborted) return
      last = await this.status(name).catch(() => undefined)
      const failed =
        last?.tasks.find((t) => t.state === 'FAILED') ??
        (last?.connector.state === 'FAILED' ? last.connector : undefined)
      if (failed) {
        throw new RagstreamError(
          'RS_CONFIG_INVALID',
          `connector ${name} failed: ${(failed.trace ?? '').split('\n').slice(0, 3).join(' ')}`,
          {
            context: { field: name, service: 'kafka-connect' },
          },
        )
      }
      if (
        last?.connector.state === 'RUNNING' &&
        last.tasks.length > 0 &&
        last.tasks.every((t) => t.state === 'RUNNING')
      )
        return
      if (Date.now() > deadline) {
        throw new RagstreamError(
          'RS_SERVICE_UNAVAILABLE',
          `connector ${name} not running after ${timeoutMs} ms: ${JSON.stringify(last)}`,
          {
            context: { service: 'kafka-connect', address: this.url },
          },
        )
      }
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }

  /** The names of the connectors the cluster runs. */
  async list(): Promise<string[]> {
    const { status, json } = await this.#request('GET', '/connectors')
    if (status >= 300 || !Array.isArray(json))
      throw new RagstreamError(
        'RS_SERVICE_UNAVAILABLE',
        `listing connectors failed (${status}): ${JSON.stringify(json)}`,
        {
          context: { service: 'kafka-connect', address: this.url },
        },
      )
    return json as string[]
  }

  /**
   * Makes a running connector snapshot its tables again (`snapshot.mode=initial`): stops it, deletes
   * its source offsets (Connect 3.6+ `DELETE /connectors/<name>/offsets`, which needs it STOPPED) and
   * resumes it. The replication slot stays, so changes made meanwhile are read by the new snapshot, not
   * streamed; the completed snapshot deletes the rows it did not read again (docs/cdc.md).
   * `whileStopped` runs between the stop and the reset (a test's "changes while no connector ran").
   */
  async resnapshot(name: string, whileStopped?: () => Promise<void>, timeoutMs = 60_000): Promise<void> {
    const path = `/connectors/${encodeURIComponent(name)}`
    const check = (what: string, { status, json }: { status: number; json: unknown }): void => {
      if (status >= 300)
        throw new RagstreamError(
          'RS_SERVICE_UNAVAILABLE',
          `${what} connector ${name} failed (${status}): ${JSON.stringify(json)}`,
          { context: { service: 'kafka-connect', address: this.url } },
        )
    }
    check('stopping', await this.#request('PUT', `${path}/stop`))
    const deadline = Date.now() + timeoutMs
    // The connector reads STOPPED before its tasks have shut down; a task still RUNNING streams what
    // `whileStopped` changes, which a re-snapshot must not see streamed.
    const stopped = (s: ConnectorStatus | undefined): boolean =>
      s?.connector.state === 'STOPPED' && !s.tasks.some((task) => task.state === 'RUNNING')
    while (!stopped(await this.status(name))) {
      if (Date.now() > deadline)
        throw new RagstreamError('RS_SERVICE_UNAVAILABLE', `connector ${name} did not stop in ${timeoutMs} ms`, {
          context: { service: 'kafka-connect', address: this.url },
        })
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    await whileStopped?.()
    check('resetting the offsets of', await this.#request('DELETE', `${path}/offsets`))
    check('resuming', await this.#request('PUT', `${path}/resume`))
  }

  /** Deletes the connector (absent is fine). Its replication slot stays: drop it in the source database. */
  async remove(name: string): Promise<void> {
    const { status, json } = await this.#request('DELETE', `/connectors/${encodeURIComponent(name)}`)
    if (status >= 300 && status !== 404)
      throw new RagstreamError(
        'RS_SERVICE_UNAVAILABLE',
        `deleting connector ${name} failed (${status}): ${JSON.stringify(json)}`,
        {
          context: { service: 'kafka-connect', address: this.url },
        },
      )
  }
}
