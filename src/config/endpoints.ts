/**
 * Where the services are. The same names and defaults as `scripts/env.sh` and `docker-compose.yml`;
 * the README's environment table documents them.
 */
import { maskCredentials } from '../security/secrets.ts'

export interface Endpoints {
  readonly kafkaBrokers: readonly string[]
  readonly schemaRegistryUrl: string
  readonly redisUrl: string
  readonly redisClusterNodes: readonly { host: string; port: number }[]
  readonly postgresUrl: string
}

export const ENDPOINT_DEFAULTS = {
  RAGSTREAM_KAFKA_BROKERS: '127.0.0.1:9092',
  RAGSTREAM_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:8081/apis/ccompat/v7',
  RAGSTREAM_REDIS_URL: 'redis://127.0.0.1:6379',
  RAGSTREAM_REDIS_CLUSTER_NODES: '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003',
  RAGSTREAM_POSTGRES_URL: 'postgres://postgres@127.0.0.1:5432/ragstream',
} as const

export function endpointsFromEnv(env: NodeJS.ProcessEnv = process.env): Endpoints {
  const get = (name: keyof typeof ENDPOINT_DEFAULTS): string => env[name]?.trim() || ENDPOINT_DEFAULTS[name]
  return {
    kafkaBrokers: get('RAGSTREAM_KAFKA_BROKERS')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    schemaRegistryUrl: get('RAGSTREAM_SCHEMA_REGISTRY_URL'),
    redisUrl: get('RAGSTREAM_REDIS_URL'),
    redisClusterNodes: get('RAGSTREAM_REDIS_CLUSTER_NODES')
      .split(',')
      .map((s) => {
        const [host, port] = s.trim().split(':')
        return { host, port: Number(port) }
      }),
    postgresUrl: get('RAGSTREAM_POSTGRES_URL'),
  }
}

/** A URL with any password replaced, for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return maskCredentials(url)
  }
}
