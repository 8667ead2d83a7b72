// Helpers for the runtime's integration tests: child-process runners, an input feeder with per-key
// sequence numbers, a read_committed output reader and the exactly-once oracle.
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'
import { Consumer, findErrorBy, Producer } from '@platformatic/kafka'
import { PartitionReader } from '../../src/runtime/partition-reader.ts'
import type { SourceRecord } from '../../src/runtime/task.ts'
import type { KafkaRuntimeOptions, RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { createTopics, endpoints, uniqueName } from './stack.ts'
import { deleteAfter, type After } from './runtime-waits.ts'
import { MARKER_KEY } from './counting-topology.ts'
import type { RunnerConfig } from './runtime-runner.ts'

const NODE = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url))
const RUNNER = fileURLToPath(new URL('./runtime-runner.ts', import.meta.url))

export interface RunnerEvent {
  readonly event: string
  readonly [field: string]: unknown
}

export class Runner {
  readonly child: ChildProcess
  readonly events: RunnerEvent[] = []
  readonly exited: Promise<number | null>
  readonly name: string
  #stderr = ''
  #waiters: (() => void)[] = []

  constructor(name: string, config: RunnerConfig) {
    this.name = name
    this.child = spawn(NODE, [RUNNER], {
      env: { ...process.env, RUNNER_CONFIG: JSON.stringify(config) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let buffered = ''
    this.child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      let nl: number
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        try {
          this.events.push(JSON.parse(line) as RunnerEvent)
        } catch {
          this.events.push({ event: 'stdout', line })
        }
        for (const w of this.#waiters.splice(0)) w()
      }
    })
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-4000)
    })
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code) => {
        for (const w of this.#waiters.splice(0)) w()
        resolve(code)
      }),
    )
  }

  get stderr(): string {
    return this.#stderr
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  count(event: string): number {
    return this.events.filter((e) => e.event === event).length
  }

  /** Resolves with the first event (from index `from`) matching the predicate. */
  async waitFor(predicate: (e: RunnerEvent) => boolean, timeoutMs: number, from = 0): Promise<RunnerEvent> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.events.slice(from).find(predicate)
      if (found) return found
      if (!this.alive)
        throw new Error(
          `${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before the awaited event; last events: ${JSON.stringify(this.events.slice(-5))}; stderr: ${this.#stderr}`,
        )
      const left = deadline - Date.now()
      if (left <= 0)
        throw new Error(
          `${this.name}: timed out waiting; last events: ${JSON.stringify(this.events.slice(-5))}; stderr: ${this.#stderr}`,
        )
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250))
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** The exit code, waited for at most `timeoutMs`; rejects naming `what` was awaited, with the last events and stderr. */
  async exitCode(what: string, timeoutMs = 60_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `${this.name}: ${what}: did not exit within ${timeoutMs} ms; last events: ${JSON.stringify(this.events.slice(-5))}; stderr: ${this.#stderr}`,
                ),
              ),
            timeoutMs,
          )
          timer.unref()
        }),
      ])
    } finally {
      clearTimeout(timer)
    }
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal)
  }

  /** SIGTERM and wait; SIGKILL if it does not stop in time. */
  async stop(timeoutMs = 15_000): Promise<number | null> {
    if (!this.alive) return this.child.exitCode
    this.child.kill('SIGCONT')
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.kill('SIGKILL'), timeoutMs)
    const code = await this.exitCode('stop (SIGTERM, then SIGKILL)', timeoutMs + 10_000)
    clearTimeout(timer)
    return code
  }
}

/** Produces keyed input with per-key sequence numbers 1, 2, 3, … (idempotent, not transactional). */
export class InputFeeder {
  readonly #producer: Producer
  readonly #topic: string
  readonly #keys: string[]
  readonly sent = new Map<string, number>()
  #next = 0

  constructor(topic: string, keys: number, brokers: readonly string[] = endpoints.kafkaBrokers) {
    this.#topic = topic
    this.#keys = Array.from({ length: keys }, (_, i) => `key-${i}`)
    this.#producer = new Producer({
      clientId: uniqueName('feeder'),
      bootstrapBrokers: [...brokers],
      idempotent: true,
    })
  }

  get total(): number {
    let n = 0
    for (const v of this.sent.values()) n += v
    return n
  }

  async send(count: number): Promise<void> {
    const messages = []
    for (let i = 0; i < count; i++) {
      const key = this.#keys[this.#next++ % this.#keys.length]
      const seq = (this.sent.get(key) ?? 0) + 1
      this.sent.set(key, seq)
      messages.push({ topic: this.#topic, key: Buffer.from(key), value: Buffer.from(String(seq)) })
    }
    await this.#producer.send({ messages })
  }

  /** One marker per partition: read back through the processor, it proves no transaction hangs. */
  async sendMarkers(partitions: number, id: string): Promise<void> {
    const messages = Array.from({ length: partitions }, (_, p) => ({
      topic: this.#topic,
      partition: p,
      key: Buffer.from(MARKER_KEY),
      value: Buffer.from(id),
    }))
    await this.#producer.send({ messages })
  }

  async close(): Promise<void> {
    await this.#producer.close()
  }
}

const STALE_METADATA = ['NOT_LEADER_OR_FOLLOWER', 'LEADER_NOT_AVAILABLE', 'UNKNOWN_TOPIC_OR_PARTITION']

/** Everything committed in `topic` (read_committed), read until `done(records)` holds or the timeout passes. */
export async function readCommitted(
  topic: string,
  partitions: number,
  done: (records: SourceRecord[]) => boolean,
  timeoutMs: number,
  brokers: readonly string[] = endpoints.kafkaBrokers,
): Promise<SourceRecord[]> {
  const consumer = new Consumer({
    groupId: uniqueName('verify'),
    clientId: uniqueName('verify'),
    bootstrapBrokers: [...brokers],
  })
  const reader = new PartitionReader(consumer, { fetchMaxBytes: 4 * 1024 * 1024, fetchMaxWaitMs: 200 })
  const records: SourceRecord[] = []
  try {
    await reader.assign(Array.from({ length: partitions }, (_, p) => ({ topic, partition: p, offset: 0n })))
    const deadline = Date.now() + timeoutMs
    while (!done(records) && Date.now() < deadline) {
      try {
        const batch = await reader.nextBatch(100_000, 64 * 1024 * 1024)
        records.push(...batch.records)
      } catch (error) {
        // A topic created a moment ago (or a broker just restarted) may not have its leader yet:
        // refresh the metadata and read on from where the reader is.
        if (!STALE_METADATA.some((id) => findErrorBy(error as Error, 'apiId', id))) throw error
        await new Promise((r) => setTimeout(r, 200))
        await reader.assign(reader.assigned)
      }
    }
  } finally {
    await consumer.close(true)
  }
  return records
}

export function markersSeen(records: readonly SourceRecord[], id: string): number {
  return records.filter((r) => r.key?.toString() === MARKER_KEY && r.value?.toString() === id).length
}

/**
 * An independent reader: Apache Kafka's own Java console consumer (from the local stack's jars) with
 * `--isolation-level read_committed`, so the exactly-once verdict does not rest on ragstream's
 * read_committed filter alone. Reads until `count` records arrived (or 20 s without new ones).
 */
export async function readCommittedWithKafkaConsumer(
  topic: string,
  count: number,
): Promise<{ key: Buffer; value: Buffer }[]> {
  const stackDir = process.env.RAGSTREAM_STACK_DIR ?? fileURLToPath(new URL('../../.stack', import.meta.url))
  const version = process.env.RAGSTREAM_KAFKA_VERSION
  const lib = join(
    stackDir,
    'kafka',
    version ? `lib-${version}` : readdirSync(join(stackDir, 'kafka')).find((d) => d.startsWith('lib-'))!,
  )
  const args = [
    '-Xmx256m',
    '-cp',
    `${lib}/*`,
    'org.apache.kafka.tools.consumer.ConsoleConsumer',
    '--bootstrap-server',
    endpoints.kafkaBrokers.join(','),
    '--topic',
    topic,
    '--from-beginning',
    '--isolation-level',
    'read_committed',
    '--max-messages',
    String(count),
    '--timeout-ms',
    '20000',
    '--group',
    uniqueName('java-verify'),
    '--property',
    'print.key=true',
    '--property',
    'key.separator=\t',
  ]
  return new Promise((resolve, reject) => {
    const child = spawn('java', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-2000)))
    child.once('error', reject)
    child.once('exit', () => {
      const lines = out.split('\n').filter((l) => l.length > 0)
      if (lines.length === 0 && count > 0) return reject(new Error(`the Kafka console consumer read nothing: ${err}`))
      resolve(
        lines.map((line) => {
          const tab = line.indexOf('\t')
          return { key: Buffer.from(line.slice(0, tab)), value: Buffer.from(line.slice(tab + 1)) }
        }),
      )
    })
  })
}

/**
 * The oracle: for every key, the outputs (in partition order) are `key,seq,count` with seq = count =
 * 1, 2, …, n, where n is how many records of that key were sent. Anything lost, duplicated, visible
 * from an aborted transaction, or computed from state that diverged breaks it.
 */
export function assertExactlyOnce(
  records: readonly { key: Buffer | null; value: Buffer | null }[],
  sent: ReadonlyMap<string, number>,
): void {
  const byKey = new Map<string, string[]>()
  for (const r of records) {
    const key = r.key?.toString() ?? ''
    if (key === MARKER_KEY) continue
    const list = byKey.get(key) ?? []
    list.push(r.value?.toString() ?? '')
    byKey.set(key, list)
  }
  const problems: string[] = []
  for (const [key, n] of sent) {
    const got = byKey.get(key) ?? []
    const expected = Array.from({ length: n }, (_, i) => `${key},${i + 1},${i + 1}`)
    if (got.length !== expected.length || got.some((v, i) => v !== expected[i])) {
      const firstBad = got.findIndex((v, i) => v !== expected[i])
      problems.push(
        `${key}: expected ${n} outputs, got ${got.length}; first difference at #${firstBad}: ${got[firstBad]} (expected ${expected[firstBad]})`,
      )
    }
  }
  for (const key of byKey.keys()) if (!sent.has(key)) problems.push(`unexpected key ${key}`)
  assert.deepEqual(problems, [], problems.slice(0, 10).join('\n'))
}

/**
 * Fresh input and output topics for the counting topology under a fresh application id; its
 * changelog (created by the runtime) is deleted with them after the test.
 */
export async function countingTopics(
  t: After,
  prefix: string,
  partitions: number,
): Promise<{ applicationId: string; input: string; output: string }> {
  const applicationId = uniqueName(prefix)
  const input = `${applicationId}-in`
  const output = `${applicationId}-out`
  await createTopics(t, [input, output], partitions)
  await deleteAfter(t, [`${applicationId}-counts-changelog`])
  return { applicationId, input, output }
}

/**
 * KafkaRuntime options for the counting topology on the shared stack: a fresh in-memory `counts`
 * store, short session and transaction timeouts, events to `onEvent`. `batchMaxRecords` and the
 * timeouts may be overridden.
 */
export function countingRuntimeOptions(
  onEvent: (event: RuntimeEvent) => void,
  o: { readonly batchMaxRecords?: number; readonly sessionTimeoutMs?: number } = {},
): KafkaRuntimeOptions {
  return {
    brokers: endpoints.kafkaBrokers,
    stores: new Map([['counts', new MemoryStateStore('counts')]]),
    sessionTimeoutMs: o.sessionTimeoutMs ?? 3_000,
    transactionTimeoutMs: 10_000,
    batchMaxRecords: o.batchMaxRecords ?? 100,
    fetchMaxWaitMs: 100,
    onEvent,
  }
}

/**
 * One transactional id (hence one producer id, as for a ragstream instance that restarts or has a
 * twin) writes to partition 0 of `topic`: a transaction with records that aborts, one that commits,
 * one that adds the partition and aborts before producing to it (its ABORT marker comes with no
 * aborted-transaction entry in Fetch answers), and one that commits. Records are keyed by their
 * values; returns the values a read_committed reader must see, in order. (@platformatic/kafka's own
 * read_committed filter drops the first committed transaction here; see src/runtime/read-committed.ts.)
 */
export async function writeAbortCommitEmptyAbort(t: After, topic: string): Promise<string[]> {
  const producer = new Producer({
    clientId: uniqueName('abort-commit'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    transactionalId: uniqueName('abort-commit'),
    idempotent: true,
    producerId: -1n,
    producerEpoch: -1,
  })
  t.after(() => producer.close())
  const transaction = async (values: string[], outcome: 'commit' | 'abort'): Promise<void> => {
    const tx = await producer.beginTransaction()
    if (values.length > 0) {
      await tx.send({
        messages: values.map((v) => ({ topic, partition: 0, key: Buffer.from(v), value: Buffer.from(v) })),
      })
    } else {
      await tx.addPartitions(await producer.metadata({ topics: [topic] }), [
        { topic, partition: 0, value: Buffer.alloc(0) },
      ])
    }
    await (outcome === 'commit' ? tx.commit() : tx.abort())
  }
  await transaction(['aborted-1', 'aborted-2'], 'abort')
  await transaction(['committed-1', 'committed-2'], 'commit')
  await transaction([], 'abort')
  await transaction(['committed-3'], 'commit')
  return ['committed-1', 'committed-2', 'committed-3']
}
