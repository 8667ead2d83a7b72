// `ragstream sink --writers 3` over a 6-partition chunk topic while transactional events keep
// arriving, SIGKILLed twice (once the moment a batch transaction starts) and restarted with the same
// instance id: the table ends with exactly the rows one single-writer sink writes from the same
// topic into its own table (same chunk ids, content, chunk partition and offset), and with the last
// committed value per chunk id. Every writer owned a disjoint share of the partitions and committed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type pg from 'pg'
import { resolveSinkConfig, type SinkConfig } from '../../src/sink/config.ts'
import { bootstrapDatabase, migrate } from '../../src/sink/migrations.ts'
import { PgvectorSink } from '../../src/sink/pgvector-sink.ts'
import { writerInstanceId } from '../../src/sink/sink-writers.ts'
import { endpoints } from '../support/stack.ts'
import {
  chunkProducer,
  connect,
  createRoles,
  createSinkEnv,
  diffTable,
  roleUrl,
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

test('writerInstanceId: one writer keeps the instance id, several get -w<i>', () => {
  assert.equal(writerInstanceId('sink-a', 0, 1), 'sink-a')
  assert.equal(writerInstanceId('sink-a', 2, 3), 'sink-a-w2')
  assert.equal(writerInstanceId(undefined, 1, 3), undefined)
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
