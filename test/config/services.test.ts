// When a service is down, the checks name it and its address (and never a password), with a hint.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { endpointsFromEnv } from '../../src/config/endpoints.ts'
import {
  checkKafka,
  checkPostgres,
  checkRedis,
  checkSchemaRegistry,
  connectPostgres,
} from '../../src/config/services.ts'
import { RagstreamError } from '../../src/errors.ts'

/** A loopback port that nothing listens on: bind, read the port, close. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function assertUnavailable(check: Promise<void>, service: RegExp, address: string): Promise<void> {
  await assert.rejects(check, (error: unknown) => {
    assert.ok(error instanceof RagstreamError)
    assert.equal(error.code, 'RS_SERVICE_UNAVAILABLE')
    assert.equal(error.retriable, true)
    assert.match(error.message, service)
    assert.ok(error.message.includes(address), `${error.message} names ${address}`)
    assert.doesNotMatch(error.message, /s3cret/)
    assert.match(error.hint ?? '', /stack/)
    return true
  })
}

test('each service check names the service and its address when it is down', async () => {
  const port = await closedPort()
  const env = endpointsFromEnv({
    RAGSTREAM_KAFKA_BROKERS: `127.0.0.1:${port}`,
    RAGSTREAM_SCHEMA_REGISTRY_URL: `http://127.0.0.1:${port}/apis/ccompat/v7`,
    RAGSTREAM_REDIS_URL: `redis://:s3cret@127.0.0.1:${port}`,
    RAGSTREAM_POSTGRES_URL: `postgres://app:s3cret@127.0.0.1:${port}/ragstream`,
  })
  await assertUnavailable(checkKafka(env), /^Kafka/, `127.0.0.1:${port}`)
  await assertUnavailable(checkSchemaRegistry(env.schemaRegistryUrl), /schema registry/, `127.0.0.1:${port}`)
  await assertUnavailable(checkRedis(env.redisUrl), /^Redis/, `127.0.0.1:${port}`)
  await assertUnavailable(checkPostgres(env.postgresUrl), /^PostgreSQL/, `127.0.0.1:${port}`)
  // Commands connecting to Postgres (query, sink, forget) say the same, not `connect ECONNREFUSED`.
  await assertUnavailable(
    connectPostgres(env.postgresUrl, 'test').then(() => {}),
    /^PostgreSQL/,
    `127.0.0.1:${port}`,
  )
  // A registry URL with credentials: the password is masked in the address and in the cause.
  await assertUnavailable(
    checkSchemaRegistry(`http://reg:s3cret@127.0.0.1:${port}/apis/ccompat/v7`),
    /schema registry/,
    `127.0.0.1:${port}`,
  )
})

test('endpoints default to the local stack and honour overrides', () => {
  const defaults = endpointsFromEnv({})
  assert.deepEqual(defaults.kafkaBrokers, ['127.0.0.1:9092'])
  assert.equal(defaults.redisClusterNodes.length, 3)
  const custom = endpointsFromEnv({ RAGSTREAM_KAFKA_BROKERS: ' a:1 , b:2 ' })
  assert.deepEqual(custom.kafkaBrokers, ['a:1', 'b:2'])
})
