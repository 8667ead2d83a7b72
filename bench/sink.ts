// bench/sink.ts — the pgvector sink against the fastest way into the same table shape, and what N
// sink writers buy over one.
//
// For 384 and 768 dimensions, in one run, the same N chunk rows into the same table shape:
//   COPY:     raw binary COPY of N rows into an identical table (same columns, same HNSW, btree and
//             GIN indexes; no RLS), rows pre-encoded so only the COPY is timed; run before and after
//             the sinks, the mean is the baseline;
//   sinks:    `ragstream sink` child processes consuming N chunk events (10 % tombstones of earlier
//             chunks) from a transactional topic of P partitions (P = the largest N of
//             BENCH_SINK_WRITERS) into one HNSW table, emptied before each run (rows and stored
//             offsets; fresh consumer group):
//               one writer          1 process, --writers 1 (first and again last: the baseline is the mean)
//               N writers, 1 proc.  1 process, --writers N
//               N processes         N processes, --writers 1 each, one group
//             each run starts behind a gate: the bench holds the offsets rows locked until every
//             writer has joined and the group has settled, then releases them, so the timed part
//             (release → the commit that stores every end offset) has no start-up and no rebalance
//             in it; printed with the batches, the processes' CPU time from the release and peak
//             RSS, and the time the processes took to start and settle;
//   N connections: the same rows split over N connections, each COPYing its share into one HNSW
//             table at once: what N writers could reach if the sink cost nothing;
//   bulk:     COPY into the table without its HNSW index, then one CREATE INDEX with
//             maintenance_work_mem and max_parallel_maintenance_workers (what `replay --bulk` does).
// Prints rows/s and the ratios to COPY and to one writer. BENCH_SINK_N rows (default 6000; a few
// minutes on a 2-core machine; 2000 for a quick look), BENCH_SINK_DIMS=384,768, BENCH_SINK_WRITERS=2,4.
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { cpus } from 'node:os'
import { readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { Admin, Producer } from '@platformatic/kafka'
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import { endpointsFromEnv } from '../src/config/endpoints.ts'
import { resolveSinkConfig, type SinkConfig } from '../src/sink/config.ts'
import { bootstrapDatabase, migrate, CHUNK_COLUMNS } from '../src/sink/migrations.ts'
import { quoteIdent } from '../src/sink/identifiers.ts'

const N = Number(process.env.BENCH_SINK_N ?? 6000)
const WRITERS = (process.env.BENCH_SINK_WRITERS ?? '2,4').split(',').map(Number)
const PARTITIONS = Math.max(...WRITERS)
const endpoints = endpointsFromEnv()

function roleUrl(role: string): string {
  const url = new URL(endpoints.postgresUrl)
  url.username = role
  url.password = ''
  return url.toString()
}

function randomVector(dims: number): number[] {
  const v = new Array<number>(dims)
  let norm = 0
  for (let i = 0; i < dims; i++) {
    v[i] = Math.random() * 2 - 1
    norm += v[i] * v[i]
  }
  const scale = 1 / Math.sqrt(norm)
  for (let i = 0; i < dims; i++) v[i] = Math.fround(v[i] * scale)
  return v
}

interface BenchChunk {
  readonly id: string
  readonly text: string
  readonly embedding: number[]
  readonly metadata: string
}

function chunk(i: number, dims: number): BenchChunk {
  return {
    id: `doc${i}#0`,
    text: `chunk ${i}: the customer reports that the parcel arrived damaged and asks for a refund; order ${i * 7919}`,
    embedding: randomVector(dims),
    metadata: JSON.stringify({ priority: i % 3 === 0 ? 'high' : 'low', order: i }),
  }
}

// ---- binary COPY encoding -------------------------------------------------------------------
// File: "PGCOPY\n\377\r\n\0", int32 flags, int32 extension length; per tuple an int16 field count
// then per field int32 length (-1 = NULL) and the type's binary send format; int16 -1 trailer.
const PG_EPOCH_MS = Date.UTC(2000, 0, 1)

class CopyWriter {
  #buf = Buffer.allocUnsafe(1 << 20)
  #pos = 0
  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n))
    this.#buf.copy(next, 0, 0, this.#pos)
    this.#buf = next
  }
  raw(b: Buffer): void {
    this.#ensure(b.length)
    b.copy(this.#buf, this.#pos)
    this.#pos += b.length
  }
  int16(v: number): void {
    this.#ensure(2)
    this.#pos = this.#buf.writeInt16BE(v, this.#pos)
  }
  int32(v: number): void {
    this.#ensure(4)
    this.#pos = this.#buf.writeInt32BE(v, this.#pos)
  }
  int64(v: bigint): void {
    this.#ensure(8)
    this.#pos = this.#buf.writeBigInt64BE(v, this.#pos)
  }
  text(s: string | null): void {
    if (s === null) return this.int32(-1)
    const b = Buffer.from(s, 'utf8')
    this.int32(b.length)
    this.raw(b)
  }
  i4(v: number): void {
    this.int32(4)
    this.int32(v)
  }
  i8(v: bigint): void {
    this.int32(8)
    this.int64(v)
  }
  /** pgvector: int16 dims, int16 unused, float4 × dims. */
  vector(v: readonly number[]): void {
    this.int32(4 + 4 * v.length)
    this.int16(v.length)
    this.int16(0)
    this.#ensure(4 * v.length)
    for (const x of v) this.#pos = this.#buf.writeFloatBE(x, this.#pos)
  }
  /** jsonb: version byte 1, then the JSON text. */
  jsonb(json: string): void {
    const b = Buffer.from(json, 'utf8')
    this.int32(b.length + 1)
    this.#ensure(1)
    this.#buf[this.#pos++] = 1
    this.raw(b)
  }
  /** text[] (1-D): ndim, has-null flag, element oid 25, length, lower bound 1, elements. */
  textArray(items: readonly string[]): void {
    const encoded = items.map((s) => Buffer.from(s, 'utf8'))
    if (encoded.length === 0) {
      this.int32(12)
      this.int32(0)
      this.int32(0)
      this.int32(25)
      return
    }
    this.int32(20 + encoded.reduce((n, b) => n + 4 + b.length, 0))
    this.int32(1)
    this.int32(0)
    this.int32(25)
    this.int32(encoded.length)
    this.int32(1)
    for (const b of encoded) {
      this.int32(b.length)
      this.raw(b)
    }
  }
  timestamptz(ms: number): void {
    this.i8(BigInt(ms - PG_EPOCH_MS) * 1000n)
  }
  take(): Buffer {
    const out = Buffer.from(this.#buf.subarray(0, this.#pos))
    this.#pos = 0
    return out
  }
}

function encodeCopy(config: SinkConfig, chunks: readonly BenchChunk[]): Buffer[] {
  const w = new CopyWriter()
  w.raw(Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'))
  w.int32(0)
  w.int32(0)
  const parts: Buffer[] = []
  const now = Date.now()
  chunks.forEach((c, i) => {
    w.int16(CHUNK_COLUMNS.length)
    w.text(c.id)
    w.text('ticket')
    w.text(c.id.split('#')[0])
    w.i4(0)
    w.text(c.text)
    w.text(`h${i}`)
    w.vector(c.embedding)
    w.jsonb(c.metadata)
    w.text('internal')
    w.text('acme')
    w.text('eu')
    w.textArray([`customer:${i}`])
    w.text(null)
    w.text('cdc.tickets')
    w.i4(0)
    w.i8(BigInt(i))
    w.text(null)
    w.timestamptz(now)
    w.text(config.topology)
    w.text(config.version)
    w.text('fixed')
    w.text('bench:random')
    w.timestamptz(now)
    w.text(config.topic)
    w.i4(0)
    w.i8(BigInt(i))
    w.timestamptz(now)
    w.text('copy')
    w.timestamptz(now) // source_appended_at
    if (i % 1000 === 999) parts.push(w.take())
  })
  w.int16(-1)
  parts.push(w.take())
  return parts
}

// ---- sink runs -------------------------------------------------------------------------------
interface SinkRun {
  readonly label: string
  /** N events / (the last commit − the start gate's release). */
  readonly rps: number
  /** From spawning the processes until the group had settled (start-up, joins, rebalances). */
  readonly settleMs: number
  readonly batches: number
  /** Peak resident set of each process (VmHWM). */
  readonly rssMb: readonly number[]
  /** CPU seconds (user + system) of all the run's processes from release to the end, and per second: near 1 per process, Node is the limit. */
  readonly cpuSeconds: number
  readonly cpuPerSecond: number
}

const repoRoot = new URL('../', import.meta.url).pathname
/** The group has settled when no writer reported an assignment or a pending claim for this long. */
const SETTLED_QUIET_MS = 2500

/** User + system CPU seconds of a live process (/proc/<pid>/stat fields 14 and 15, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return NaN
  }
}

function peakRssMb(pid: number | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024
  } catch {
    return NaN
  }
}

/**
 * Runs `processes` × `ragstream sink --writers <writers>` on one group from an empty table until the
 * offsets committed (as their batch-committed events report them) reach `end` on every partition,
 * then SIGTERMs them.
 *
 * The start gate: the partitions' offsets rows (at offset 0) are held locked by the bench, so every
 * writer's claim stays pending (`claim-pending`) while the processes start and the group settles
 * (every writer has reported its pending share and nothing changed for SETTLED_QUIET_MS); then the
 * lock is released and every writer claims within its 1 s retry. So one process and N processes
 * start writing alike, and no rebalance falls inside the timed part.
 */
async function runSinks(o: {
  label: string
  config: SinkConfig
  groupId: string
  sinkUrl: string
  end: ReadonlyMap<number, bigint>
  processes: number
  writers: number
}): Promise<SinkRun> {
  const c = o.config
  const n = c.names
  const gate = new pg.Client({ connectionString: endpoints.postgresUrl })
  await gate.connect()
  await gate.query(
    `INSERT INTO ${n.offsetsTable} (topic, partition, next_offset, owner_token, claimed_at, updated_at)
     SELECT $1, p, 0, gen_random_uuid(), now(), now() FROM unnest($2::int[]) AS p`,
    [c.topic, [...o.end.keys()]],
  )
  await gate.query('BEGIN')
  await gate.query(`SELECT 1 FROM ${n.offsetsTable} WHERE topic = $1 FOR UPDATE`, [c.topic])
  const committed = new Map<number, bigint>()
  const pendingMembers = new Set<string>()
  let lastGroupEvent = performance.now()
  let releasedAt = 0
  let doneAt = 0
  let batches = 0
  let resolveDone!: () => void
  let rejectRun!: (error: Error) => void
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve
    rejectRun = reject
  })
  const onEvent = (member: string, e: Record<string, unknown>): void => {
    if (doneAt > 0) return
    if (e.event === 'assigned' || e.event === 'claim-pending') {
      lastGroupEvent = performance.now()
      if (e.event === 'claim-pending') pendingMembers.add(member)
      if (releasedAt > 0 && e.event === 'assigned' && (e.partitions as number[]).length === 0)
        process.stderr.write(`${o.label}: a writer reported an empty assignment after the start gate\n`)
    } else if (e.event === 'batch-committed') {
      if (releasedAt === 0) rejectRun(new Error(`${o.label}: a batch committed before the start gate opened`))
      batches++
      for (const [p, next] of Object.entries(e.offsets as Record<string, string>)) {
        const offset = BigInt(next)
        if (offset > (committed.get(Number(p)) ?? 0n)) committed.set(Number(p), offset)
      }
      if ([...o.end].every(([p, last]) => (committed.get(p) ?? 0n) >= last)) {
        doneAt = performance.now()
        resolveDone()
      }
    }
  }
  const args = [
    'bin/ragstream.ts',
    'sink',
    c.topology,
    ...['--dims', String(c.dims), '--topic', c.topic, '--schema', n.schema],
    ...['--view-schema', n.viewSchema, '--owner-role', n.ownerRole, '--sink-role', n.sinkRole],
    ...['--postgres-url', o.sinkUrl, '--group', o.groupId, '--writers', String(o.writers)],
    ...['--batch-size', String(c.batchMaxRecords), '--linger-ms', String(c.batchLingerMs)],
    ...['--session-timeout-ms', '6000'],
  ]
  const started = performance.now()
  const children = Array.from({ length: o.processes }, (_, i) => {
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RAGSTREAM_LOG_FORMAT: 'json' },
    })
    let pending = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8')
      let nl: number
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        if (!line.startsWith('{')) continue
        const e = JSON.parse(line) as Record<string, unknown>
        onEvent(`${i}/${String(e.writer ?? 0)}`, e)
      }
    })
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')))
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    void exited.then((code) => {
      if (doneAt === 0)
        rejectRun(new Error(`${o.label}: a sink exited (${code}) before the end: ${stderr.slice(-2000)}`))
    })
    return { child, exited }
  })
  const stopAll = async (): Promise<(number | null)[]> => {
    for (const { child } of children) child.kill('SIGTERM')
    return Promise.all(children.map(({ exited }) => exited))
  }
  let cpuAtRelease: number
  try {
    const members = o.processes * o.writers
    const settled = (async () => {
      while (
        pendingMembers.size < Math.min(members, o.end.size) ||
        performance.now() - lastGroupEvent < SETTLED_QUIET_MS
      )
        await new Promise((resolve) => setTimeout(resolve, 100))
    })()
    await Promise.race([settled, done])
    cpuAtRelease = children.reduce((sum, { child }) => sum + cpuSeconds(child.pid), 0)
    releasedAt = performance.now()
    await gate.query('ROLLBACK')
    await done
  } catch (error) {
    await stopAll()
    throw error
  } finally {
    await gate.end().catch(() => {})
  }
  const rssMb = children.map(({ child }) => peakRssMb(child.pid))
  const cpu = children.reduce((sum, { child }) => sum + cpuSeconds(child.pid), 0) - cpuAtRelease
  const codes = await stopAll()
  if (codes.some((code) => code !== 0)) throw new Error(`${o.label}: a sink exited ${codes.join(',')} after SIGTERM`)
  const seconds = (doneAt - releasedAt) / 1000
  return {
    label: o.label,
    rps: N / seconds,
    settleMs: releasedAt - started - SETTLED_QUIET_MS,
    batches,
    rssMb,
    cpuSeconds: cpu,
    cpuPerSecond: cpu / seconds,
  }
}

// ---- one dimension ---------------------------------------------------------------------------
async function benchDims(dims: number): Promise<{ copyRps: number; sinkRps: number }> {
  const suffix = randomUUID().replaceAll('-', '').slice(0, 10)
  const config = resolveSinkConfig({
    topology: `bench${suffix}`,
    dims,
    topic: `rag.chunks.bench${suffix}`,
    schema: `rsb_${suffix}`,
    viewSchema: `rvb_${suffix}`,
    ownerRole: `rsb_owner_${suffix}`,
    sinkRole: `rsb_sink_${suffix}`,
    batchMaxRecords: 2000,
    batchLingerMs: 200,
  })
  const n = config.names
  const admin = new pg.Client({ connectionString: endpoints.postgresUrl })
  await admin.connect()
  const kafkaAdmin = new Admin({ clientId: `bench-${suffix}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
  try {
    for (const role of [n.ownerRole, n.sinkRole])
      await admin.query(`CREATE ROLE ${quoteIdent(role)} LOGIN NOSUPERUSER NOBYPASSRLS`)
    await bootstrapDatabase(admin, n)
    const owner = new pg.Client({ connectionString: roleUrl(n.ownerRole) })
    await owner.connect()
    await migrate(owner, config)
    await owner.end()
    // Baseline: raw binary COPY of N rows, once before and once after the sink (into a fresh
    // identical table each time), so drift in machine load shows up instead of skewing the ratio.
    const chunks = Array.from({ length: N }, (_, i) => chunk(i, dims))
    const copyParts = encodeCopy(config, chunks)
    const copyOnce = async (name: string): Promise<number> => {
      const baseline = `${quoteIdent(n.schema)}.${quoteIdent(name)}`
      await admin.query(`CREATE TABLE ${baseline} (LIKE ${n.chunkTable} INCLUDING ALL)`)
      const start = performance.now()
      await pipeline(
        Readable.from(copyParts),
        admin.query(copyFrom(`COPY ${baseline} (${CHUNK_COLUMNS.join(', ')}) FROM STDIN (FORMAT binary)`)),
      )
      const seconds = (performance.now() - start) / 1000
      const copied = (await admin.query(`SELECT count(*)::int AS n FROM ${baseline}`)).rows[0].n
      if (copied !== N) throw new Error(`COPY wrote ${copied} rows, expected ${N}`)
      return seconds
    }
    const copyBefore = await copyOnce('copy_before')

    // The same N events on a transactional topic: every 10th is a tombstone of an earlier chunk.
    await kafkaAdmin.createTopics({ topics: [config.topic], partitions: PARTITIONS, replicas: 1 })
    const registry = new SchemaRegistry({ host: endpoints.schemaRegistryUrl })
    const schema = readFileSync(new URL('../schemas/chunk-event.avsc', import.meta.url), 'utf8')
    const { id: schemaId } = await registry.register(
      { type: SchemaType.AVRO, schema },
      { subject: `${config.topic}-value` },
    )
    const producer = new Producer({
      clientId: `bench-${suffix}`,
      bootstrapBrokers: [...endpoints.kafkaBrokers],
      transactionalId: `bench-${suffix}`,
      idempotent: true,
    })
    let tombstones = 0
    try {
      for (let start = 0; start < N; start += 1000) {
        const messages = []
        for (let i = start; i < Math.min(N, start + 1000); i++) {
          if (i % 10 === 9) {
            tombstones++
            messages.push({
              topic: config.topic,
              key: Buffer.from(chunks[i - 5].id),
              value: undefined,
              partition: (i - 5) % PARTITIONS,
            })
            continue
          }
          const c = chunks[i]
          const value = await registry.encode(schemaId, {
            chunk_id: c.id,
            entity_type: 'ticket',
            entity_key: c.id.split('#')[0],
            chunk_index: 0,
            text: c.text,
            embedding: c.embedding,
            content_hash: `h${i}`,
            metadata: c.metadata,
            classification: 'internal',
            tenant: 'acme',
            region: 'eu',
            subjects: [`customer:${i}`],
            policy_version: null,
            lineage: {
              source_topic: 'cdc.tickets',
              source_partition: 0,
              source_offset: i,
              source_timestamp_ms: Date.now(),
              source_position: null,
              topology: config.topology,
              topology_version: config.version,
              chunker: 'fixed',
              embedding_model: 'bench:random',
              emitted_at_ms: Date.now(),
            },
          })
          messages.push({ topic: config.topic, key: Buffer.from(c.id), value, partition: i % PARTITIONS })
        }
        // One transaction per 1000 events, sent in slices that stay under the broker's 1 MiB batch limit.
        const tx = await producer.beginTransaction()
        for (let j = 0; j < messages.length; j += 150) await tx.send({ messages: messages.slice(j, j + 150) })
        await tx.commit()
      }
    } finally {
      await producer.close()
    }
    const listed = await kafkaAdmin.listOffsets({
      topics: [
        {
          name: config.topic,
          partitions: Array.from({ length: PARTITIONS }, (_, p) => ({ partitionIndex: p, timestamp: -1n })),
        },
      ],
    })
    const end = new Map(listed[0].partitions.map((p) => [p.partitionIndex, p.offset]))

    // The sinks: one writer, N writers in one process, N processes; the same table, emptied each time.
    const runs: SinkRun[] = []
    const expectedRows = N - 2 * tombstones
    const sinkRun = async (label: string, processes: number, writers: number): Promise<SinkRun> => {
      await admin.query(`TRUNCATE ${n.chunkTable}`)
      await admin.query(`DELETE FROM ${n.offsetsTable} WHERE topic = $1`, [config.topic])
      const run = await runSinks({
        label,
        config,
        groupId: `${config.groupId}.${runs.length}`,
        sinkUrl: roleUrl(n.sinkRole),
        end,
        processes,
        writers,
      })
      const rows = (await admin.query(`SELECT count(*)::int AS n FROM ${n.chunkTable}`)).rows[0].n
      if (rows !== expectedRows) throw new Error(`${label}: table has ${rows} rows, expected ${expectedRows}`)
      runs.push(run)
      return run
    }
    // One writer first and last (like COPY), so drift in the machine's load shows instead of
    // skewing the ratios: "×1 wr." is to the mean of the two.
    const oneBefore = await sinkRun('one writer', 1, 1)
    for (const w of WRITERS) {
      await sinkRun(`${w} processes`, w, 1)
      await sinkRun(`${w} writers, 1 process`, 1, w)
    }
    const oneAfter = await sinkRun('one writer, again', 1, 1)
    const one = { rps: 2 / (1 / oneBefore.rps + 1 / oneAfter.rps) }
    const copyAfter = await copyOnce('copy_after')
    const copySeconds = (copyBefore + copyAfter) / 2
    const copyRps = N / copySeconds
    const sinkRps = one.rps

    // N connections into one HNSW table: each COPYs its share of the rows at the same time.
    const writersLines: string[] = []
    for (const writers of WRITERS) {
      const table = `${quoteIdent(n.schema)}.${quoteIdent(`copy_w${writers}`)}`
      await admin.query(`CREATE TABLE ${table} (LIKE ${n.chunkTable} INCLUDING ALL)`)
      const shares = Array.from({ length: writers }, (_, w) =>
        encodeCopy(
          config,
          chunks.filter((_, i) => i % writers === w),
        ),
      )
      const clients = await Promise.all(
        shares.map(async () => {
          const c = new pg.Client({ connectionString: endpoints.postgresUrl })
          await c.connect()
          return c
        }),
      )
      try {
        const start = performance.now()
        await Promise.all(
          shares.map((parts, w) =>
            pipeline(
              Readable.from(parts),
              clients[w].query(copyFrom(`COPY ${table} (${CHUNK_COLUMNS.join(', ')}) FROM STDIN (FORMAT binary)`)),
            ),
          ),
        )
        const rps = N / ((performance.now() - start) / 1000)
        writersLines.push(`${writers} connections ${rps.toFixed(0)} rows/s = ${(rps / copyRps).toFixed(2)}× one`)
      } finally {
        await Promise.all(clients.map((c) => c.end()))
      }
    }

    // Bulk: COPY without the HNSW index, then build it once.
    const bulk = `${quoteIdent(n.schema)}.${quoteIdent('copy_bulk')}`
    await admin.query(`CREATE TABLE ${bulk} (LIKE ${n.chunkTable} INCLUDING ALL)`)
    const hnsw = await admin.query<{ name: string }>(
      `SELECT indexname AS name FROM pg_indexes WHERE schemaname = $1 AND tablename = 'copy_bulk' AND indexdef ~ 'USING hnsw'`,
      [n.schema],
    )
    for (const { name } of hnsw.rows) await admin.query(`DROP INDEX ${quoteIdent(n.schema)}.${quoteIdent(name)}`)
    const workers = Number(process.env.BENCH_SINK_BUILD_WORKERS ?? 2)
    const loadStart = performance.now()
    await pipeline(
      Readable.from(copyParts),
      admin.query(copyFrom(`COPY ${bulk} (${CHUNK_COLUMNS.join(', ')}) FROM STDIN (FORMAT binary)`)),
    )
    const loadSeconds = (performance.now() - loadStart) / 1000
    const buildStart = performance.now()
    await admin.query('BEGIN')
    await admin.query(
      `SET LOCAL maintenance_work_mem = '512MB'; SET LOCAL max_parallel_maintenance_workers = ${workers}`,
    )
    await admin.query(
      `CREATE INDEX ON ${bulk} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)`,
    )
    await admin.query('COMMIT')
    const buildSeconds = (performance.now() - buildStart) / 1000
    const bulkRps = N / (loadSeconds + buildSeconds)
    const pad = (v: string, w: number): string => v.padStart(w)
    const sinkTable = runs
      .map(
        (r) =>
          `  ${r.label.padEnd(22)}${pad(r.rps.toFixed(0), 7)}${pad((r.rps / copyRps).toFixed(2) + '×', 8)}${pad((r.rps / one.rps).toFixed(2) + '×', 8)}` +
          `${pad(r.batches.toString(), 8)}${pad(r.cpuSeconds.toFixed(1), 7)}${pad(r.cpuPerSecond.toFixed(2), 7)}${pad((r.settleMs / 1000).toFixed(1), 9)}   ${r.rssMb.map((m) => m.toFixed(0)).join('+')} MB`,
      )
      .join('\n')
    process.stdout.write(
      `dims ${String(dims).padStart(4)}  ${N} rows (${tombstones} tombstones), ${PARTITIONS} partitions\n` +
        `  COPY, 1 connection:   ${copyRps.toFixed(0)} rows/s (before ${(N / copyBefore).toFixed(0)}, after ${(N / copyAfter).toFixed(0)})\n` +
        `  sink                   rows/s  ×COPY  ×1 wr. batches  CPU s  CPU/s  start s   peak RSS per process\n` +
        `${sinkTable}\n` +
        `  ${writersLines.join('   ')}\n` +
        `  bulk: COPY without HNSW ${loadSeconds.toFixed(2)} s + CREATE INDEX (${workers} workers) ${buildSeconds.toFixed(2)} s = ` +
        `${bulkRps.toFixed(0)} rows/s = ${(bulkRps / copyRps).toFixed(2)}× one connection's incremental COPY, ${(bulkRps / sinkRps).toFixed(2)}× one writer\n`,
    )
    return { copyRps, sinkRps }
  } finally {
    await kafkaAdmin.deleteTopics({ topics: [config.topic] }).catch(() => {})
    await kafkaAdmin.close()
    for (const role of [n.ownerRole, n.sinkRole]) {
      await admin
        .query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role])
        .catch(() => {})
      await admin.query(`DROP OWNED BY ${quoteIdent(role)} CASCADE`).catch(() => {})
      await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`).catch(() => {})
    }
    await admin.end()
  }
}

process.stdout.write(
  `pgvector sink (1 and N writers) vs raw binary COPY, N = ${N}, HNSW m=16 ef_construction=64 (cosine), ${cpus().length} cores\n`,
)
const loadavg = (): string =>
  globalThis.process.platform === 'linux'
    ? readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
    : 'n/a'
process.stdout.write(`machine: load average ${loadavg()} (1/5/15 min) at start\n`)
for (const dims of (process.env.BENCH_SINK_DIMS ?? '384,768').split(',').map(Number)) await benchDims(dims)
process.stdout.write(`machine: load average ${loadavg()} (1/5/15 min) at end\n`)
