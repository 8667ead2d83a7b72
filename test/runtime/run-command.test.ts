// `ragstream run <topology-file>` end to end: a DSL topology file (table → to) compiled with the
// broker's partition counts, run by the CLI with in-memory stores and Prometheus metrics, stopped by
// SIGTERM (exit 0).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Admin, Producer } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { readCommitted } from '../support/runtime-harness.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { startPrivateRedis } from '../state/redis-harness.ts'
import { freePort } from '../support/local.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const PARTITIONS = 2

type After = { after: (fn: () => Promise<void> | void) => void }

/**
 * A fresh pass-through topology file (table → to) on fresh topics, with an idempotent feeder of
 * keyed records `k<n>` → `{"n": n}`; topics, internal topics and the file go away after the test.
 */
async function passThroughTopologyFile(t: After, applicationId: string) {
  const input = `${applicationId}.in`
  const output = `${applicationId}.out`
  await createTopics(t, [input, output], PARTITIONS)
  t.after(async () => {
    const admin = new Admin({ clientId: uniqueName('cleanup'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    await admin
      .deleteTopics({ topics: [`${applicationId}-input-changelog`, `${applicationId}-dead-letter`] })
      .catch(() => {})
    await admin.close()
  })
  const dir = await mkdtemp(join(tmpdir(), 'ragstream-run-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'topology.ts')
  await writeFile(
    file,
    [
      `import { TopologyBuilder } from ${JSON.stringify(join(ROOT, 'src/dsl/index.ts'))}`,
      `const builder = new TopologyBuilder({ applicationId: ${JSON.stringify(applicationId)} })`,
      `builder.table(${JSON.stringify(input)}, { name: 'input' }).to(${JSON.stringify(output)})`,
      'export default builder.build()',
    ].join('\n'),
  )
  const producer = new Producer({
    clientId: uniqueName('feed'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    idempotent: true,
  })
  t.after(() => producer.close())
  const feed = (from: number, count: number) =>
    producer.send({
      messages: Array.from({ length: count }, (_, i) => ({
        topic: input,
        key: Buffer.from(`k${from + i}`),
        value: Buffer.from(JSON.stringify({ n: from + i })),
      })),
    })
  return { input, output, file, feed }
}

test(
  'ragstream run: runs a DSL topology file exactly once and stops gracefully on SIGTERM',
  { timeout: 60_000 },
  async (t) => {
    await checkKafka(endpoints)
    const applicationId = uniqueName('rt-cli')
    const { file, feed, input, output } = await passThroughTopologyFile(t, applicationId)
    await feed(0, 200)

    const port = await freePort()
    const args = [
      'run',
      file,
      '--store',
      'memory',
      '--instance-id',
      'cli-test',
      '--session-timeout-ms',
      '3000',
      '--metrics-port',
      String(port),
    ]
    const child = spawn(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'bin/ragstream.ts'), ...args], {
      env: { ...process.env, RAGSTREAM_KAFKA_BROKERS: endpoints.kafkaBrokers.join(',') },
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    const exitCode = (what: string, ms: number): Promise<number | null> =>
      boundedExit(
        exited,
        ms,
        () => `${what}: ragstream run did not exit within ${ms} ms; stderr: ${stderr.slice(-3000)}`,
      )

    const records = await readCommitted(output, PARTITIONS, (r) => r.length >= 200, 30_000)
    const exposition = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    assert.match(
      exposition,
      new RegExp(
        `ragstream_records_in_total\\{topology="${applicationId}",node="${input.replaceAll('.', '\\.')}"\\} 200`,
      ),
    )
    child.kill('SIGTERM')
    assert.equal(await exitCode('ragstream run after SIGTERM', 30_000), 0, stderr)
    assert.equal(records.length, 200, stderr)
    assert.deepEqual(
      new Set(records.map((r) => r.key?.toString())),
      new Set(Array.from({ length: 200 }, (_, i) => `k${i}`)),
    )
    const events = stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; transactionalId?: string })
    // `run` first verifies (or creates) the topics it writes, then starts the runtime.
    const starting = events.findIndex((e) => e.event === 'starting')
    assert.ok(starting >= 0 && events.slice(0, starting).every((e) => e.event === 'topic-verified'))
    assert.equal(events[starting].transactionalId, `${applicationId}-cli-test`)
    assert.ok(events.some((e) => e.event === 'signal'))
    assert.equal(events.at(-1)?.event, 'stopped')
  },
)

/** `exited`, or a rejection with `message()` after `ms` (the timer never keeps the test alive). */
async function boundedExit(exited: Promise<number | null>, ms: number, message: () => string): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      exited,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message())), ms).unref())),
    ])
  } finally {
    clearTimeout(timer)
  }
}

test(
  'ragstream run: a graceful stop that cannot finish (its Redis stalls) ends at --shutdown-timeout-ms with exit 1 and the reason logged; the uncommitted batch is processed once, by the next instance',
  { timeout: 120_000 },
  async (t) => {
    await checkKafka(endpoints)
    const redis = await startPrivateRedis(t)
    const { file, feed, output } = await passThroughTopologyFile(t, uniqueName('rt-deadline'))

    const start = (): {
      exitCode: (what: string, ms: number) => Promise<number | null>
      kill: (s: NodeJS.Signals) => void
      stderr: () => string
    } => {
      const args = [
        'run',
        file,
        '--store',
        'redis',
        '--instance-id',
        'deadline-test',
        '--session-timeout-ms',
        '3000',
        '--shutdown-timeout-ms',
        '3000',
      ]
      const child = spawn(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'bin/ragstream.ts'), ...args], {
        env: {
          ...process.env,
          RAGSTREAM_KAFKA_BROKERS: endpoints.kafkaBrokers.join(','),
          RAGSTREAM_REDIS_URL: redis.url,
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      let stderr = ''
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
      t.after(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      })
      return {
        exitCode: (what, ms) =>
          boundedExit(
            exited,
            ms,
            () => `${what}: ragstream run did not exit within ${ms} ms; stderr: ${stderr.slice(-3000)}`,
          ),
        kill: (s) => void child.kill(s),
        stderr: () => stderr,
      }
    }

    await feed(0, 100)
    const first = start()
    assert.equal((await readCommitted(output, PARTITIONS, (r) => r.length >= 100, 60_000)).length, 100, first.stderr())
    // The store's Redis stops answering for 10 s (CLIENT PAUSE): the next batch's prefetch waits, and
    // so does the graceful stop behind it. (CLIENT UNPAUSE below is itself held until the pause ends.)
    await redis.admin.call('CLIENT', 'PAUSE', '10000', 'ALL')
    let tookMs: number
    try {
      await feed(100, 100)
      await new Promise((r) => setTimeout(r, 1500))
      const signalled = Date.now()
      first.kill('SIGTERM')
      assert.equal(await first.exitCode('ragstream run with a stalled Redis, after SIGTERM', 20_000), 1, first.stderr())
      tookMs = Date.now() - signalled
    } finally {
      await redis.admin.call('CLIENT', 'UNPAUSE')
    }
    const events = first
      .stderr()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    const timeout = events.find((e) => e.event === 'shutdown-timeout')
    assert.ok(timeout, `a shutdown-timeout event: ${first.stderr().slice(-2000)}`)
    assert.equal(timeout.timeoutMs, 3000)
    assert.match(String(timeout.waitingFor), /last runtime event/)
    assert.ok(!events.some((e) => e.event === 'stopped'), 'the graceful stop did not finish')
    assert.ok(tookMs >= 2900 && tookMs < 15_000, `exited ${tookMs} ms after SIGTERM`)

    // The next instance (same instance id) processes the uncommitted batch: every key once.
    const second = start()
    const records = await readCommitted(output, PARTITIONS, (r) => r.length >= 200, 60_000)
    second.kill('SIGTERM')
    assert.equal(await second.exitCode('the second ragstream run after SIGTERM', 30_000), 0, second.stderr())
    assert.equal(records.length, 200, second.stderr())
    assert.deepEqual(
      new Set(records.map((r) => r.key?.toString())),
      new Set(Array.from({ length: 200 }, (_, i) => `k${i}`)),
    )
    t.diagnostic(
      `stalled instance exited ${tookMs} ms after SIGTERM (deadline 3000 ms): ${String(timeout.waitingFor)}; open: ${JSON.stringify(timeout.open)}`,
    )
  },
)

test(
  'ragstream run --leave-group: a static member that stops for a scale-in hands its tasks over at once, not after its session timeout',
  { timeout: 90_000 },
  async (t) => {
    await checkKafka(endpoints)
    const { file, feed, output } = await passThroughTopologyFile(t, uniqueName('rt-leave'))
    await feed(0, 50)
    const start = (instanceId: string, extra: readonly string[]) => {
      // A session longer than the test's bound: only a LeaveGroup can move the tasks in time.
      const args = ['run', file, '--store', 'memory', '--instance-id', instanceId, '--session-timeout-ms', '30000']
      const child = spawn(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'bin/ragstream.ts'), ...args, ...extra], {
        env: { ...process.env, RAGSTREAM_KAFKA_BROKERS: endpoints.kafkaBrokers.join(',') },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      let stderr = ''
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
      t.after(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      })
      const assignments = () =>
        stderr
          .split('\n')
          .filter((l) => l.includes('"event":"assigned"'))
          .map((l) => JSON.parse(l) as { tasks: number[]; time: string })
      return { child, exited, assignments, stderr: () => stderr }
    }
    const waitFor = async (what: string, ok: () => boolean, ms: number) => {
      const deadline = Date.now() + ms
      while (!ok()) {
        assert.ok(Date.now() < deadline, `${what} within ${ms} ms`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    const a = start('leave-a', [])
    await waitFor('a to own every task', () => a.assignments().at(-1)?.tasks.length === PARTITIONS, 30_000)
    const b = start('leave-b', ['--leave-group'])
    await waitFor(
      'a and b to split the tasks',
      () => a.assignments().at(-1)?.tasks.length === 1 && b.assignments().at(-1)?.tasks.length === 1,
      30_000,
    )
    const stopped = Date.now()
    b.child.kill('SIGTERM')
    assert.equal(await boundedExit(b.exited, 30_000, () => `b did not exit: ${b.stderr().slice(-2000)}`), 0)
    await waitFor('a to own every task again', () => a.assignments().at(-1)?.tasks.length === PARTITIONS, 20_000)
    const handoverMs = Date.now() - stopped
    assert.ok(handoverMs < 20_000, `tasks back after ${handoverMs} ms, far below the 30 s session`)
    // Still exactly once across the hand-over.
    await feed(50, 50)
    const records = await readCommitted(output, PARTITIONS, (r) => r.length >= 100, 30_000)
    assert.deepEqual(
      records.map((r) => r.key?.toString()).sort(),
      Array.from({ length: 100 }, (_, i) => `k${i}`).sort(),
    )
    a.child.kill('SIGTERM')
    assert.equal(await boundedExit(a.exited, 30_000, () => `a did not exit: ${a.stderr().slice(-2000)}`), 0)
    t.diagnostic(`--leave-group: the remaining member owned every task ${handoverMs} ms after SIGTERM`)
  },
)
