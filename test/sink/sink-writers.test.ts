// `ragstream sink --writers 3` over a 6-partition chunk topic while transactional events keep
// arriving, SIGKILLed twice (once the moment a batch transaction starts) and restarted with the same
// instance id: the table ends with exactly the rows one single-writer sink writes from the same
// topic into its own table (same chunk ids, content, chunk partition and offset), and with the last
// committed value per chunk id. Every writer owned a disjoint share of the partitions and committed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Admin } from '@platformatic/kafka'
import type pg from 'pg'
import { loadApp } from '../../src/app/load.ts'
import { loadConfig } from '../../src/config/file.ts'
import { deployment } from '../../src/ops/deployment.ts'
import { groupStates } from '../../src/ops/group-members.ts'
import { prepareDatabase } from '../../src/ops/pipeline.ts'
import { resolveSinkConfig, type SinkConfig } from '../../src/sink/config.ts'
import { bootstrapDatabase, migrate } from '../../src/sink/migrations.ts'
import { PgvectorSink } from '../../src/sink/pgvector-sink.ts'
import { isRetiredWriter, writerInstanceId } from '../../src/sink/sink-writers.ts'
import { createTopics, endpoints } from '../support/stack.ts'
import {
  ADMIN_URL,
  chunkProducer,
  connect,
  createRoles,
  createSinkEnv,
  diffTable,
  roleUrl,
  spawnRagstream,
  spawnSink,
  startProduction,
  waitFor,
  waitForCatchUp,
  type SinkChild,
} from './support.ts'

const PARTITIONS = 6
const WRITERS = 3

type Event = Record<string, unknown>

/** The rows as (chunk id → content hash, chunk partition and offset), as the superuser reads them. */
async function rowsOf(admin: pg.Client, config: SinkConfig): Promise<Map<string, string>> {
  const r = await admin.query<{
    chunk_id: string
    content_hash: string
    chunk_partition: number
    chunk_offset: string
  }>(`SELECT chunk_id, content_hash, chunk_partition, chunk_offset::text FROM ${config.names.chunkTable}`)
  return new Map(r.rows.map((row) => [row.chunk_id, `${row.content_hash}@${row.chunk_partition}:${row.chunk_offset}`]))
}

/** Each writer's latest assignment in a child's events. */
function latestAssignments(events: readonly Event[]): Map<number, number[]> {
  const out = new Map<number, number[]>()
  for (const e of events) if (e.event === 'assigned') out.set(e.writer as number, e.partitions as number[])
  return out
}

test(`sink --writers ${WRITERS}: SIGKILL and restart mid-stream — the rows one writer writes, nothing lost or duplicated`, async (t) => {
  const env = await createSinkEnv(t, { dims: 8, partitions: PARTITIONS, batchLingerMs: 50, sessionTimeoutMs: 6000 })
  const { config } = env
  const production = startProduction(await chunkProducer(t, config), config, { ids: 600, partitions: PARTITIONS })
  const args = ['--writers', String(WRITERS), '--instance-id', `wr-${env.suffix}`, '--batch-size', '200']
  const committedBy = new Set<number>()
  const allEvents: Event[] = []
  const observe = (sink: SinkChild): void =>
    sink.onEvent((e) => {
      allEvents.push(e)
      if (e.event === 'batch-committed') committedBy.add(e.writer as number)
    })
  for (let round = 0; round < 2; round++) {
    const sink = spawnSink(t, env, args)
    observe(sink)
    // Every writer joins under its own static member id and gets a share of the partitions.
    await sink.waitForEvent((e) => e.event === 'started' && e.writer === WRITERS - 1, 90_000)
    for (let w = 0; w < WRITERS; w++)
      await sink.waitForEvent((e) => e.event === 'batch-committed' && e.writer === w, 90_000)
    // Once the writers have all taken their shares of the last rebalance: disjoint, covering the topic.
    await waitFor('the writers to hold disjoint shares covering every partition', async () => {
      const shares = latestAssignments(sink.events)
      const owned = [...shares.values()].flat().sort((a, b) => a - b)
      return shares.size === WRITERS && JSON.stringify(owned) === JSON.stringify([...Array(PARTITIONS).keys()])
    })
    if (round === 0) {
      // The moment any writer starts a batch transaction.
      await new Promise<void>((resolve) =>
        sink.onEvent((e) => {
          if (e.event === 'batch-begin') {
            sink.child.kill('SIGKILL')
            resolve()
          }
        }),
      )
    } else {
      await sleep(200 + Math.random() * 1500)
      sink.child.kill('SIGKILL')
    }
    await sink.exitCode('exit after SIGKILL', 10_000)
  }
  await production.stop()

  const final = spawnSink(t, env, args)
  observe(final)
  await waitForCatchUp(env.admin, config, PARTITIONS)
  final.child.kill('SIGTERM')
  assert.equal(await final.exitCode('the final sink after SIGTERM'), 0, final.stderr())
  const stopped = final.events.filter((e) => e.event === 'stopped').map((e) => e.writer)
  assert.deepEqual(stopped.sort(), [0, 1, 2], 'SIGTERM stops every writer')

  // The last committed value per chunk id.
  const diff = await diffTable(env.admin, config, production.expected)
  assert.deepEqual(
    { missing: diff.missing, extra: diff.extra, stale: diff.stale },
    { missing: [], extra: [], stale: [] },
  )
  // The oracle: one writer, from the start of the same topic, into a table of its own.
  const oracle = await singleWriterTable(t, env.admin, config)
  const rows = await rowsOf(env.admin, config)
  const expected = await rowsOf(env.admin, oracle)
  assert.equal(rows.size, expected.size, 'as many rows as one writer writes')
  assert.deepEqual(rows, expected, 'the same rows, content and chunk positions as one writer')
  assert.deepEqual([...committedBy].sort(), [0, 1, 2], 'every writer committed batches')
  const writtenBy = await env.admin.query<{ n: number }>(
    `SELECT count(DISTINCT written_by)::int AS n FROM ${config.names.chunkTable}`,
  )
  assert.ok(writtenBy.rows[0].n >= WRITERS, `rows come from ≥ ${WRITERS} writer instances (${writtenBy.rows[0].n})`)
  t.diagnostic(
    `${production.counts.committed} committed events (${production.counts.abortedTransactions} aborted transactions), ${diff.rows} rows, written by ${writtenBy.rows[0].n} writer instances over 3 runs`,
  )
})

// `--writers` with the names of an app's second copy (--name, --sql-topology), on an app file of the
// user's (not a reference topology): every writer reads the copy's chunk topic, joins the copy's
// sink group under X-w<i>, and writes the copy's table, nothing else.
test("sink <user app file> --name --sql-topology --writers 2 --instance-id: the copy's topic, group and table, one static member per writer", async (t) => {
  const suffix = randomUUID().replaceAll('-', '').slice(0, 8)
  const dir = mkdtempSync(join(tmpdir(), 'rs-writers-app-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'field-notes.ts')
  const index = fileURLToPath(new URL('../../src/index.ts', import.meta.url))
  writeFileSync(
    file,
    `import { defineApp } from ${JSON.stringify(index)}
export default defineApp({
  name: 'field-notes',
  sqlName: 'field_notes',
  build() {
    throw new Error('the sink reads the chunk topic: it never builds the topology')
  },
})
`,
  )
  const config = loadConfig({ env: process.env })
  const name = `field-notes-${suffix}`
  const sql = `field_notes_${suffix}`
  const d = deployment({ app: await loadApp(file), version: 'v1', name, sqlTopology: sql, config })
  assert.equal(d.chunkTopic, `rag.chunks.${name}`)
  assert.equal(d.sink.groupId, `ragstream-sink.${sql}.v1`)
  assert.match(d.sink.names.chunkTable, new RegExp(`chunks_${sql}_v1`))
  await createTopics(t, [d.chunkTopic], PARTITIONS)
  await prepareDatabase(d)
  const admin = await connect(t, ADMIN_URL)
  t.after(async () => {
    await admin.query(`DROP TABLE IF EXISTS ${d.sink.names.chunkTable} CASCADE`).catch(() => {})
  })
  const production = startProduction(await chunkProducer(t, d.sink), d.sink, { ids: 200, partitions: PARTITIONS })
  const id = `notes-${suffix}`
  const sink = spawnRagstream(t, [
    ...['bin/ragstream.ts', 'sink', file, '--name', name, '--sql-topology', sql],
    ...['--writers', '2', '--instance-id', id, '--session-timeout-ms', '6000'],
  ])
  const kafka = new Admin({ clientId: `test-${id}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => kafka.close())
  // While changes keep coming: the copy's group settles with one static member per writer, covering
  // the topic, and each writer commits.
  const group = await waitFor(
    "the copy's sink group to settle",
    async () => {
      const [state] = await groupStates(kafka, [d.sink.groupId])
      const tasks = state.members.flatMap((m) => m.tasks).sort((a, b) => a - b)
      return state.state === 'Stable' && state.members.length === 2 && tasks.length === PARTITIONS && state
    },
    90_000,
  )
  assert.deepEqual(
    group.members.map((m) => m.instanceId),
    [`${id}-w0`, `${id}-w1`],
    "the copy's sink group has one static member per writer",
  )
  assert.deepEqual(
    group.members.flatMap((m) => m.tasks).sort((a, b) => a - b),
    [...Array(PARTITIONS).keys()],
  )
  for (const w of [0, 1]) await sink.waitForEvent((e) => e.event === 'batch-committed' && e.writer === w, 60_000)
  await production.stop()
  await waitForCatchUp(admin, d.sink, PARTITIONS)
  sink.child.kill('SIGTERM')
  assert.equal(await sink.exitCode('the sink after SIGTERM'), 0, sink.stderr())
  const committedBy = new Set(sink.events.filter((e) => e.event === 'batch-committed').map((e) => e.writer))
  assert.deepEqual([...committedBy].sort(), [0, 1], 'both writers committed')
  const diff = await diffTable(admin, d.sink, production.expected)
  assert.deepEqual(
    { missing: diff.missing, extra: diff.extra, stale: diff.stale },
    { missing: [], extra: [], stale: [] },
  )
  assert.ok(diff.rows > 0)
})

test('writerInstanceId: one writer keeps the instance id, several get -w<i>', () => {
  assert.equal(writerInstanceId('sink-a', 0, 1), 'sink-a')
  assert.equal(writerInstanceId('sink-a', 2, 3), 'sink-a-w2')
  assert.equal(writerInstanceId(undefined, 1, 3), undefined)
})

test('isRetiredWriter: the static ids of its own writers a process with N writers does not run', () => {
  assert.equal(isRetiredWriter('sink-a-w2', 'sink-a', 2), true)
  assert.equal(isRetiredWriter('sink-a-w1', 'sink-a', 2), false)
  assert.equal(isRetiredWriter('sink-a-w0', 'sink-a', 1), true, 'one writer runs under the bare id')
  assert.equal(isRetiredWriter('sink-a', 'sink-a', 2), true, 'the bare id of a former single writer')
  assert.equal(isRetiredWriter('sink-a', 'sink-a', 1), false)
  assert.equal(isRetiredWriter('sink-ab-w3', 'sink-a', 1), false, "another process's id")
  assert.equal(isRetiredWriter('sink-a-w3-x', 'sink-a', 1), false)
  assert.equal(isRetiredWriter('sink-a-w03', 'sink-a', 1), false)
  assert.equal(isRetiredWriter('sink-b-w3', 'sink-a', 1), false)
})

// Shrinking --writers under the same --instance-id after a crash (a graceful stop leaves the group
// for every writer anyway): the new process replaces the static members it runs again, and removes
// those it does not (X-w<i>, i ≥ N; the writers' ids when it runs one under X), so their partitions
// move at once instead of after the session timeout (60 s here; before the removal the new writers
// got the whole topic only when the dead members' sessions expired).
test('sink --writers 3 → 2 → 1 after SIGKILLs, same --instance-id: the retired writers leave the group at once, every partition is written within seconds', async (t) => {
  const SESSION_MS = 60_000
  const env = await createSinkEnv(t, {
    dims: 8,
    partitions: PARTITIONS,
    batchLingerMs: 50,
    sessionTimeoutMs: SESSION_MS,
  })
  const { config } = env
  const production = startProduction(await chunkProducer(t, config), config, { ids: 300, partitions: PARTITIONS })
  const id = `shrink-${env.suffix}`
  const owners = (events: readonly Event[]): number[] =>
    [...latestAssignments(events).values()].flat().sort((a, b) => a - b)
  const everyPartition = JSON.stringify([...Array(PARTITIONS).keys()])
  for (const [writers, retired] of [
    [3, []],
    [2, [`${id}-w2`]],
    [1, [`${id}-w0`, `${id}-w1`]],
  ] as const) {
    // From the spawn: a writer's join itself waits for the members the group still expects.
    const started = Date.now()
    const sink = spawnSink(t, env, ['--writers', String(writers), '--instance-id', id, '--batch-size', '100'])
    // Every partition is owned by the new process's writers, well within the session.
    await waitFor(
      `${writers} writer(s) to own every partition`,
      async () => JSON.stringify(owners(sink.events)) === everyPartition,
      SESSION_MS * 2,
    )
    const settledMs = Date.now() - started
    assert.ok(
      settledMs < SESSION_MS / 2,
      `every partition owned ${settledMs} ms after start (session ${SESSION_MS} ms)`,
    )
    const removed = sink.events.filter((e) => e.event === 'writers-removed')
    assert.deepEqual(
      removed.map((e) => e.instanceIds),
      retired.length === 0 ? [] : [retired],
      `--writers ${writers} removes the static members it does not run`,
    )
    t.diagnostic(
      `--writers ${writers}: removed ${JSON.stringify(retired)}, every partition owned ${settledMs} ms after start`,
    )
    await sink.waitForEvent((e) => e.event === 'batch-committed', 60_000)
    sink.child.kill('SIGKILL')
    await sink.exitCode('exit after SIGKILL', 10_000)
  }
  await production.stop()
  // A last single writer under the same id catches up: nothing lost or stale across the shrinks.
  const final = spawnSink(t, env, ['--instance-id', id])
  await waitForCatchUp(env.admin, config, PARTITIONS)
  final.child.kill('SIGTERM')
  assert.equal(await final.exitCode('the final sink after SIGTERM'), 0, final.stderr())
  const diff = await diffTable(env.admin, config, production.expected)
  assert.deepEqual(
    { missing: diff.missing, extra: diff.extra, stale: diff.stale },
    { missing: [], extra: [], stale: [] },
  )
})

/**
 * A second table (own schemas and roles, same topology and version names) written by one plain
 * PgvectorSink from the start of `source`'s chunk topic, caught up to its end.
 */
async function singleWriterTable(
  t: { after: (fn: () => Promise<void>) => void },
  admin: pg.Client,
  source: SinkConfig,
): Promise<SinkConfig> {
  const suffix = `o${source.topology.slice(1)}`
  const config = resolveSinkConfig({
    topology: source.topology,
    version: source.version,
    topic: source.topic,
    dims: source.dims,
    schema: `rs_${suffix}`,
    viewSchema: `rv_${suffix}`,
    ownerRole: `rs_owner_${suffix}`,
    sinkRole: `rs_sink_${suffix}`,
    groupId: `${source.groupId}-oracle`,
    batchLingerMs: 50,
    sessionTimeoutMs: 6000,
  })
  await createRoles(t, admin, [config.names.ownerRole, config.names.sinkRole])
  await bootstrapDatabase(admin, config.names)
  const owner = await connect(t, roleUrl(config.names.ownerRole))
  await migrate(owner, config)
  const sink = new PgvectorSink({
    config,
    postgresUrl: roleUrl(config.names.sinkRole),
    kafkaBrokers: endpoints.kafkaBrokers,
    schemaRegistryUrl: endpoints.schemaRegistryUrl,
  })
  const running = sink.run()
  t.after(async () => {
    sink.stop()
    await running.catch(() => {})
  })
  await Promise.race([
    waitForCatchUp(admin, config, PARTITIONS),
    running.then(() => {
      throw new Error('the oracle sink stopped early')
    }),
  ])
  sink.stop()
  await running
  return config
}
