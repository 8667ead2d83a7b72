// Configuration: a --config file plus RAGSTREAM_* variables, validated once before any command runs;
// a bad value fails fast (exit 78, no service contacted) with a message naming the field.
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { main } from '../../src/cli/main.ts'
import { COMMANDS } from '../../src/cli/commands.ts'
import { configFieldsMarkdown, loadConfig } from '../../src/config/file.ts'
import { ConfigError } from '../../src/errors.ts'

async function cli(
  argv: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk, _e, done) {
        append(String(chunk))
        done()
      },
    })
  const code = await main(argv, {
    stdout: sink((s) => (stdout += s)) as unknown as typeof process.stdout,
    stderr: sink((s) => (stderr += s)) as unknown as typeof process.stderr,
    env,
  })
  return { code, stdout, stderr }
}

async function configFile(t: { after: (fn: () => Promise<void>) => void }, content: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ragstream-config-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'ragstream.json')
  await writeFile(file, content)
  return file
}

test('a bad config file fails fast, before any connection, naming every bad field', async (t) => {
  // Every service the config is valid for points at a listener that counts connections: a command
  // that validated late would connect to it (and then fail on the protocol) before reporting.
  let connections = 0
  const listener = createServer((socket) => {
    connections++
    socket.destroy()
  })
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => listener.close(() => resolve())))
  const at = `127.0.0.1:${(listener.address() as AddressInfo).port}`
  const services = {
    RAGSTREAM_POSTGRES_URL: `postgres://postgres@${at}/ragstream`,
    RAGSTREAM_REDIS_URL: `redis://${at}`,
    RAGSTREAM_SCHEMA_REGISTRY_URL: `http://${at}/apis/ccompat/v7`,
  }
  const file = await configFile(
    t,
    JSON.stringify({
      sink: { dimensions: 0, schema: 'Robert"); DROP' },
      kafka: { brokers: ['no-port'] },
      metrics: { prot: 9464 },
    }),
  )
  for (const command of ['demo', 'status', 'replay', 'promote', 'run', 'sink', 'generate']) {
    const { code, stderr } = await cli([command, '--config', file], { RAGSTREAM_KAFKA_BROKERS: '', ...services })
    assert.equal(code, 78, `${command}: ${stderr}`)
    assert.equal(connections, 0, `${command} connected to a service before it reported the bad config`)
    assert.match(
      stderr,
      /^error RS_CONFIG_INVALID: invalid configuration \(.*ragstream\.json and RAGSTREAM_\* variables\):/,
    )
    assert.match(stderr, /\n {2}\/sink\/dimensions: expected an integer ≥ 1\n/)
    assert.match(stderr, /\n {2}\/sink\/schema: expected a SQL identifier/)
    assert.match(stderr, /\n {2}\/kafka\/brokers: expected host:port, got "no-port"/)
    assert.match(stderr, /\n {2}\/metrics\/prot: unknown field/)
  }
})

test('RAGSTREAM_* variables are validated the same way and named with their field', async () => {
  const { code, stderr } = await cli(['status', 'support-copilot'], {
    RAGSTREAM_METRICS_PORT: 'ninety',
    RAGSTREAM_REDIS_URL: 'http://127.0.0.1:6379',
    RAGSTREAM_LOG_FORMAT: 'yaml',
  })
  assert.equal(code, 78)
  assert.match(stderr, /\/metrics\/port \(RAGSTREAM_METRICS_PORT\): expected an integer from 0 to 65535/)
  assert.match(stderr, /\/redis\/url \(RAGSTREAM_REDIS_URL\): expected a redis or rediss URL, got scheme http:/)
  assert.match(stderr, /\/log\/format \(RAGSTREAM_LOG_FORMAT\): expected one of json, human, auto/)
})

test('unreadable or non-JSON files name --config', async (t) => {
  const missing = await cli(['status', 'support-copilot', '--config', '/nonexistent/ragstream.json'])
  assert.equal(missing.code, 78)
  assert.match(missing.stderr, /--config: cannot read \/nonexistent\/ragstream\.json: ENOENT/)
  const bad = await cli(['status', 'support-copilot', '--config', await configFile(t, '{"sink": ')])
  assert.equal(bad.code, 78)
  assert.match(bad.stderr, /--config: .* is not a JSON object/)
})

test('precedence: default < file < environment; file values reach commands as their variables', async (t) => {
  const file = await configFile(
    t,
    JSON.stringify({
      kafka: { brokers: ['10.0.0.5:9092', 'kafka-2:9092'] },
      redis: { url: 'redis://cache:6380' },
      sink: { dimensions: 768, sinkRole: 'writer' },
      postgres: { url: 'postgres://admin:secret@db:5432/rag' },
    }),
  )
  const config = loadConfig({ file, env: { RAGSTREAM_REDIS_URL: 'redis://from-env:6379' } })
  assert.deepEqual(config.endpoints.kafkaBrokers, ['10.0.0.5:9092', 'kafka-2:9092'])
  assert.equal(config.env.RAGSTREAM_KAFKA_BROKERS, '10.0.0.5:9092,kafka-2:9092')
  assert.equal(config.endpoints.redisUrl, 'redis://from-env:6379', 'the environment wins over the file')
  assert.equal(config.sink.dimensions, 768)
  assert.equal(config.sink.schema, 'ragstream', 'defaults fill the rest')
  assert.equal(
    config.postgres.sinkUrl,
    'postgres://writer@db:5432/rag',
    'role URLs derive from the admin URL without its password',
  )
  assert.equal(config.postgres.ownerUrl, 'postgres://ragstream_owner@db:5432/rag')
  assert.equal(config.metricsPort, undefined)
  assert.throws(
    () => loadConfig({ env: { RAGSTREAM_SINK_DIMENSIONS: '1.5' } }),
    (e: unknown) => e instanceof ConfigError && e.problems[0].path === '/sink/dimensions (RAGSTREAM_SINK_DIMENSIONS)',
  )
})

test('every command takes --config (listed in its --help); docs/operations.md lists every field', async () => {
  for (const name of Object.keys(COMMANDS)) {
    const { stdout } = await cli([name, '--help'])
    assert.match(stdout, /--config <file\.json>/, name)
  }
  const docs = await readFile(new URL('../../docs/operations.md', import.meta.url), 'utf8')
  assert.ok(docs.includes(configFieldsMarkdown()), 'docs/operations.md holds the table configFieldsMarkdown() prints')
})
