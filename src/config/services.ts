/**
 * Reachability checks for the services ragstream needs. Each throws a ServiceUnavailableError that
 * names the service and its address (and how to start the local stack), instead of a bare
 * ECONNREFUSED from deep inside a client.
 */
import { connect } from 'node:net'
import pg from 'pg'
import { ServiceUnavailableError } from '../errors.ts'
import { redactUrl, type Endpoints } from './endpoints.ts'
import { basicAuth } from '../security/secrets.ts'

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port })
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.end()
      resolve()
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}

function hostPort(address: string, defaultPort: number): { host: string; port: number } {
  const url = new URL(address.includes('://') ? address : `tcp://${address}`)
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || defaultPort) }
}

export async function checkKafka(endpoints: Endpoints, timeoutMs = 3000): Promise<void> {
  const broker = endpoints.kafkaBrokers[0] ?? ''
  const { host, port } = hostPort(broker, 9092)
  await tcpProbe(host, port, timeoutMs).catch((error) => {
    throw new ServiceUnavailableError('Kafka', broker, error)
  })
}

export async function checkRedis(url: string, timeoutMs = 3000): Promise<void> {
  const { host, port } = hostPort(url, 6379)
  await tcpProbe(host, port, timeoutMs).catch((error) => {
    throw new ServiceUnavailableError('Redis', redactUrl(url), error)
  })
}

export async function checkPostgres(url: string, timeoutMs = 3000): Promise<void> {
  const { host, port } = hostPort(url, 5432)
  await tcpProbe(host, port, timeoutMs).catch((error) => {
    throw new ServiceUnavailableError('PostgreSQL', redactUrl(url), error)
  })
}

export async function checkSchemaRegistry(url: string, timeoutMs = 3000): Promise<void> {
  try {
    const auth = basicAuth(url)
    const response = await fetch(new URL('subjects', auth.url.endsWith('/') ? auth.url : `${auth.url}/`), {
      headers: auth.headers,
      signal: AbortSignal.timeout(timeoutMs),
    })
    if (!response.ok) throw new Error(`HTTP ${response.status}`)
  } catch (error) {
    throw new ServiceUnavailableError('the schema registry', redactUrl(url), error)
  }
}

/** Connection-level failures (nothing answered, or it stopped answering), as opposed to a refusal by a running server. */
function isUnreachable(error: unknown): boolean {
  const e = error as { code?: string; message?: string }
  const code = e?.code ?? ''
  if (/^(08|57P)/.test(code)) return true
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code))
    return true
  return /Connection terminated|connection timeout|ECONNREFUSED/i.test(e?.message ?? '')
}

/**
 * A connected Postgres client; when nothing answers at `url`, RS_SERVICE_UNAVAILABLE naming PostgreSQL
 * and its address (password masked) instead of a bare `connect ECONNREFUSED`. A server that answers and
 * refuses (wrong password, missing database) keeps its own error, which says why.
 */
export async function connectPostgres(url: string, application: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: application })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    await client.end().catch(() => {})
    if (isUnreachable(error)) throw new ServiceUnavailableError('PostgreSQL', redactUrl(url), error)
    throw error
  }
  return client
}
