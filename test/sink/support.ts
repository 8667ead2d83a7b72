// Shared fixtures for the sink tests: per-test schemas, roles, topics and registry subjects, all
// removed in t.after(); a transactional producer of Avro chunk events; table readers.
import { readFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { spawn, type ChildProcess } from 'node:child_process'
import pg from 'pg'
import { Admin, Producer } from '@platformatic/kafka'
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import { resolveSinkConfig, type SinkConfig, type SinkConfigInput } from '../../src/sink/config.ts'
import { PgvectorSink, type SinkLogEvent } from '../../src/sink/pgvector-sink.ts'
import { bootstrapDatabase, migrate } from '../../src/sink/migrations.ts'
import { quoteIdent } from '../../src/sink/identifiers.ts'
import { within } from '../support/runtime-waits.ts'
import { createTopics, endpoints } from '../support/stack.ts'
import { auditKey, signAudit, type SignedAuditFields } from '../../src/security/audit-auth.ts'

export const ADMIN_URL = endpoints.postgresUrl

type After = { after: (fn: () => Promise<void>) => void }

export function roleUrl(role: string): string {
  const url = new URL(ADMIN_URL)
  url.username = role
  url.password = ''
  return url.toString()
}

export async function connect(t: After, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  // Cleanup terminates the per-test roles' backends; that must not crash the test process.
  client.on('error', () => {})
  await client.connect()
  t.after(async () => {
    await client.end().catch(() => {})
  })
  return client
}

/** Creates roles with LOGIN (no superuser, no BYPASSRLS) and drops them (and what they own) after the test. */
export async function createRoles(t: After, admin: pg.Client, roles: readonly string[]): Promise<void> {
  for (const role of roles) await admin.query(`CREATE ROLE ${quoteIdent(role)} LOGIN NOSUPERUSER NOBYPASSRLS`)
  t.after(async () => {
    const cleanup = new pg.Client({ connectionString: ADMIN_URL })
    await cleanup.connect()
    try {
      for (const role of roles) {
        await cleanup.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role])
        await cleanup.query(`DROP OWNED BY ${quoteIdent(role)} CASCADE`).catch(() => {})
        await cleanup.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`).catch(() => {})
      }
    } finally {
      await cleanup.end()
    }
  })
}

export interface SinkEnv {
  readonly config: SinkConfig
  readonly admin: pg.Client
  readonly owner: pg.Client
  readonly sinkUrl: string
  readonly ownerUrl: string
  readonly suffix: string
}

/**
 * A fresh topology version in Postgres (own schemas and roles) and a fresh chunk topic.
 * Cleanups run in reverse: roles (and everything they own) are dropped before the admin disconnects.
 */
export async function createSinkEnv(
  t: After,
  input: Partial<SinkConfigInput> & { dims: number; partitions?: number },
): Promise<SinkEnv> {
  const suffix = randomUUID().replaceAll('-', '').slice(0, 10)
  const config = resolveSinkConfig({
    topology: `t${suffix}`,
    version: 'v1',
    topic: `rag.chunks.t${suffix}`,
    schema: `rs_${suffix}`,
    viewSchema: `rv_${suffix}`,
    ownerRole: `rs_owner_${suffix}`,
    sinkRole: `rs_sink_${suffix}`,
    batchLingerMs: 100,
    sessionTimeoutMs: 6000,
    ...input,
  })
  await createTopics(t, [config.topic], input.partitions ?? 1)
  const admin = await connect(t, ADMIN_URL)
  await createRoles(t, admin, [config.names.ownerRole, config.names.sinkRole])
  await bootstrapDatabase(admin, config.names)
  const ownerUrl = roleUrl(config.names.ownerRole)
  const owner = await connect(t, ownerUrl)
  await migrate(owner, config)
  return { config, admin, owner, sinkUrl: roleUrl(config.names.sinkRole), ownerUrl, suffix }
}

/** The environment's sink, running in this process until the test ends; its log events as they come. */
export function runSink(t: After, env: SinkEnv): { sink: PgvectorSink; done: Promise<void>; events: SinkLogEvent[] } {
  const events: SinkLogEvent[] = []
  const sink = new PgvectorSink({
    config: env.config,
    postgresUrl: env.sinkUrl,
    kafkaBrokers: endpoints.kafkaBrokers,
    schemaRegistryUrl: endpoints.schemaRegistryUrl,
    log: (e) => events.push(e),
  })
  const done = sink.run()
  done.catch(() => {})
  t.after(async () => {
    sink.stop()
    await within(
      done.catch(() => {}),
      60_000,
      'the sink to stop',
    )
  })
  return { sink, done, events }
}

export interface ChunkSpec {
  readonly id: string
  readonly entity?: string
  readonly text?: string
  readonly version?: number
  readonly classification?: string | null
  readonly tenant?: string | null
  readonly metadata?: Record<string, unknown>
  readonly embedding?: number[]
  readonly topologyVersion?: string
}

/** A deterministic embedding for (id, version): unit-ish vector, never all zeros (cosine). */
export function embeddingFor(id: string, version: number, dims: number): number[] {
  let h = 2166136261
  for (const ch of `${id}#${version}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0
  const out = new Array<number>(dims)
  for (let i = 0; i < dims; i++) {
    h = Math.imul(h ^ (h >>> 13), 1540483477) >>> 0
    out[i] = ((h % 2000) - 1000) / 1000 + (i === 0 ? 2 : 0)
  }
  return out
}

export function chunkEvent(config: SinkConfig, spec: ChunkSpec): Record<string, unknown> {
  const version = spec.version ?? 1
  return {
    chunk_id: spec.id,
    entity_type: 'ticket',
    entity_key: spec.entity ?? spec.id.split('#')[0],
    chunk_index: 0,
    text: spec.text ?? `text of ${spec.id} v${version}`,
    embedding: spec.embedding ?? embeddingFor(spec.id, version, config.dims),
    content_hash: `hash-${spec.id}-${version}`,
    metadata: JSON.stringify(spec.metadata ?? { version }),
    classification: spec.classification === undefined ? 'internal' : spec.classification,
    tenant: spec.tenant === undefined ? 'acme' : spec.tenant,
    region: 'eu',
    subjects: [`customer:${spec.id}`],
    policy_version: null,
    lineage: {
      source_topic: 'cdc.tickets',
      source_partition: 0,
      source_offset: version,
      source_timestamp_ms: Date.now() - 1000,
      source_position: null,
      topology: config.topology,
      topology_version: spec.topologyVersion ?? config.version,
      chunker: 'fixed',
      embedding_model: 'hashing-test',
      emitted_at_ms: Date.now(),
    },
  }
}

const chunkSchema = readFileSync(new URL('../../schemas/chunk-event.avsc', import.meta.url), 'utf8')
const auditSchema = readFileSync(new URL('../../schemas/audit-event.avsc', import.meta.url), 'utf8')

export interface ChunkProducer {
  readonly registry: SchemaRegistry
  readonly chunkSchemaId: number
  readonly auditSchemaId: number
  encodeChunk(value: Record<string, unknown>): Promise<Buffer>
  encodeAudit(value: Record<string, unknown>): Promise<Buffer>
  /** Produces in one transaction; `abort` aborts it instead of committing. No messages: a transaction on partition 0 that produces nothing. */
  send(
    messages: readonly { key: string; value: Buffer | null; partition?: number }[],
    options?: { abort?: boolean },
  ): Promise<void>
  close(): Promise<void>
}

export async function chunkProducer(t: After, config: SinkConfig): Promise<ChunkProducer> {
  const registry = new SchemaRegistry({ host: endpoints.schemaRegistryUrl })
  const { id: chunkSchemaId } = await registry.register(
    { type: SchemaType.AVRO, schema: chunkSchema },
    { subject: `${config.topic}-value` },
  )
  const { id: auditSchemaId } = await registry.register(
    { type: SchemaType.AVRO, schema: auditSchema },
    { subject: `${config.topic}-audit-value` },
  )
  const producer = new Producer({
    clientId: `test-${config.topology}`,
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    transactionalId: `test-${config.topology}-${randomUUID().slice(0, 8)}`,
    idempotent: true,
  })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await producer.close().catch(() => {})
  }
  t.after(close)
  return {
    registry,
    chunkSchemaId,
    auditSchemaId,
    encodeChunk: (value) => registry.encode(chunkSchemaId, value),
    // Signed like the processor signs (the shared audit key), unless the value brings its own `auth`.
    encodeAudit: (value) =>
      registry.encode(
        auditSchemaId,
        'auth' in value ? value : { ...value, auth: signAudit(value as unknown as SignedAuditFields, auditKey()) },
      ),
    async send(messages, options = {}) {
      const tx = await producer.beginTransaction()
      if (messages.length === 0) {
        // A transaction that adds partition 0 and ends without producing to it: its marker is all it leaves.
        await tx.addPartitions(await producer.metadata({ topics: [config.topic] }), [
          { topic: config.topic, partition: 0, value: Buffer.alloc(0) },
        ])
      } else {
        await tx.send({
          messages: messages.map((m) => ({
            topic: config.topic,
            key: Buffer.from(m.key),
            value: m.value ?? undefined,
            ...(m.partition !== undefined ? { partition: m.partition } : {}),
          })),
        })
      }
      if (options.abort) await tx.abort()
      else await tx.commit()
    },
    close,
  }
}

export interface StoredChunk {
  readonly chunk_id: string
  readonly content: string
  readonly content_hash: string
  readonly chunk_offset: string
  readonly written_by: string
}

/** The table as the superuser sees it (bypasses RLS): chunk id → row. */
export async function readChunks(admin: pg.Client, config: SinkConfig): Promise<Map<string, StoredChunk>> {
  const result = await admin.query<StoredChunk>(
    `SELECT chunk_id, content, content_hash, chunk_offset::text, written_by FROM ${config.names.chunkTable}`,
  )
  return new Map(result.rows.map((r) => [r.chunk_id, r]))
}

export async function storedOffsets(admin: pg.Client, config: SinkConfig): Promise<Map<number, bigint>> {
  const result = await admin.query<{ partition: number; next_offset: string }>(
    `SELECT partition, next_offset FROM ${config.names.offsetsTable} WHERE topic = $1`,
    [config.topic],
  )
  return new Map(result.rows.map((r) => [r.partition, BigInt(r.next_offset)]))
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fn()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

export interface SinkChild {
  readonly child: ChildProcess
  readonly events: Record<string, unknown>[]
  readonly exited: Promise<number | null>
  /** What the child wrote to stderr so far (for assertion messages). */
  stderr(): string
  /**
   * The child's exit code, waited for at most `timeoutMs`; rejects naming `what` was awaited, the
   * last events and stderr when it does not exit in time (the child is killed by t.after).
   */
  exitCode(what: string, timeoutMs?: number): Promise<number | null>
  /** Resolves with the first event (already seen or future) matching `predicate`. */
  waitForEvent(
    predicate: (event: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>
  onEvent(listener: (event: Record<string, unknown>) => void): void
}

const repoRoot = new URL('../../', import.meta.url)

/** Runs `ragstream sink` as a child process on Node 24 (node_modules/.bin/node), parsing its JSON log lines. */
export function spawnSink(t: After, env: SinkEnv, extraArgs: readonly string[] = []): SinkChild {
  const c = env.config
  const args = [
    'bin/ragstream.ts',
    'sink',
    c.topology,
    '--dims',
    String(c.dims),
    '--topic',
    c.topic,
    '--schema',
    c.names.schema,
    '--view-schema',
    c.names.viewSchema,
    '--owner-role',
    c.names.ownerRole,
    '--sink-role',
    c.names.sinkRole,
    '--postgres-url',
    env.sinkUrl,
    '--session-timeout-ms',
    String(c.sessionTimeoutMs),
    '--linger-ms',
    String(c.batchLingerMs),
    '--group',
    c.groupId,
    ...extraArgs,
  ]
  return spawnRagstream(t, args)
}

/** Runs `node <args>` in the repository root (e.g. `bin/ragstream.ts sink <app file> …`), parsing its JSON log lines. */
export function spawnRagstream(t: After, args: readonly string[]): SinkChild {
  const child = spawn(new URL('node_modules/.bin/node', repoRoot).pathname, [...args], {
    cwd: repoRoot.pathname,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const events: Record<string, unknown>[] = []
  const listeners: ((event: Record<string, unknown>) => void)[] = []
  let pending = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8')
    let nl: number
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl)
      pending = pending.slice(nl + 1)
      try {
        const event = JSON.parse(line) as Record<string, unknown>
        events.push(event)
        for (const l of [...listeners]) l(event)
      } catch {
        // not a log line
      }
    }
  })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8')
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  return {
    child,
    events,
    exited,
    stderr: () => stderr,
    exitCode: (what, timeoutMs = 60_000) =>
      boundedExit(
        exited,
        timeoutMs,
        () =>
          `${what}: the sink did not exit within ${timeoutMs} ms; last events: ${JSON.stringify(events.slice(-5))}; stderr: ${stderr.slice(-3000)}`,
      ),
    onEvent: (l) => listeners.push(l),
    waitForEvent(predicate, timeoutMs = 60_000) {
      const seen = events.find(predicate)
      if (seen) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no matching sink event within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`)),
          timeoutMs,
        )
        const listener = (event: Record<string, unknown>): void => {
          if (!predicate(event)) return
          clearTimeout(timer)
          listeners.splice(listeners.indexOf(listener), 1)
          resolve(event)
        }
        listeners.push(listener)
        void exited.then((code) => {
          clearTimeout(timer)
          reject(new Error(`sink exited (${code}) before the event; stderr: ${stderr.slice(-2000)}`))
        })
      })
    },
  }
}

/** `exited`, or a rejection with `message()` after `timeoutMs` (the timer never keeps the test alive). */
export async function boundedExit(
  exited: Promise<number | null>,
  timeoutMs: number,
  message: () => string,
): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message())), timeoutMs)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

export interface Production {
  /** chunk id → content hash of its last committed upsert, or null when its last committed event is a tombstone. */
  readonly expected: Map<string, string | null>
  readonly counts: { committed: number; abortedTransactions: number }
  stop(): Promise<void>
}

/** Keeps producing transactions of 40 events (10 % tombstones, 10 % of transactions aborted) over `ids` chunk ids until stopped. */
export function startProduction(
  producer: ChunkProducer,
  config: SinkConfig,
  options: { ids: number; partitions: number },
): Production {
  const expected = new Map<string, string | null>()
  const counts = { committed: 0, abortedTransactions: 0 }
  let version = 0
  let producing = true
  const loop = (async () => {
    while (producing) {
      const messages = []
      const ops = new Map<string, string | null>()
      for (let i = 0; i < 40; i++) {
        const n = Math.floor(Math.random() * options.ids)
        const id = `e${n}#0`
        version++
        const tombstone = Math.random() < 0.1
        messages.push({
          key: id,
          partition: n % options.partitions,
          value: tombstone ? null : await producer.encodeChunk(chunkEvent(config, { id, version })),
        })
        ops.set(id, tombstone ? null : `hash-${id}-${version}`)
      }
      const abort = Math.random() < 0.1
      await producer.send(messages, { abort })
      if (abort) counts.abortedTransactions++
      else {
        for (const [id, op] of ops) expected.set(id, op)
        counts.committed += messages.length
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  return {
    expected,
    counts,
    async stop() {
      producing = false
      await loop
    },
  }
}

/** Compares the table with the expected last value per chunk id. */
export async function diffTable(
  admin: pg.Client,
  config: SinkConfig,
  expected: ReadonlyMap<string, string | null>,
): Promise<{ missing: string[]; extra: string[]; stale: string[]; rows: number }> {
  const rows = await readChunks(admin, config)
  const missing: string[] = []
  const stale: string[] = []
  const extra: string[] = []
  for (const [id, hash] of expected) {
    const row = rows.get(id)
    if (hash === null) {
      if (row) extra.push(id)
    } else if (!row) missing.push(id)
    else if (row.content_hash !== hash) stale.push(`${id}: ${row.content_hash} != ${hash}`)
  }
  for (const id of rows.keys()) if (!expected.has(id)) extra.push(id)
  return { missing, extra, stale, rows: rows.size }
}

/** The log end offsets of a topic's partitions (= the last stable offsets once no transaction is open). */
export async function endOffsets(topic: string, partitions: number): Promise<Map<number, bigint>> {
  const admin = new Admin({
    clientId: `test-admin-${randomUUID().slice(0, 8)}`,
    bootstrapBrokers: [...endpoints.kafkaBrokers],
  })
  try {
    const result = await admin.listOffsets({
      topics: [
        {
          name: topic,
          partitions: Array.from({ length: partitions }, (_, p) => ({ partitionIndex: p, timestamp: -1n })),
        },
      ],
    })
    const out = new Map<number, bigint>()
    for (const topicResult of result) for (const p of topicResult.partitions) out.set(p.partitionIndex, p.offset)
    return out
  } finally {
    await admin.close()
  }
}

/** Waits until the stored offsets reach the end of every partition. */
export async function waitForCatchUp(
  admin: pg.Client,
  config: SinkConfig,
  partitions: number,
  timeoutMs = 120_000,
): Promise<void> {
  const end = await endOffsets(config.topic, partitions)
  await waitFor(
    'the sink to reach the end of every partition',
    async () => {
      const stored = await storedOffsets(admin, config)
      return [...end].every(([p, o]) => stored.get(p) === o)
    },
    timeoutMs,
  )
}
