// A real PostgreSQL server restart mid-run, fast and then immediate (crash-like: no shutdown
// checkpoint), while chunk events keep arriving: the sink retries with backoff, skips nothing, and
// the table ends exact. The server is the test's own, so other suites never see it go down.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { startPrivatePostgres } from '../support/private-postgres.ts'

const PARTITIONS = 2

test('postgres server restarts (fast, then immediate) mid-run: the sink recovers and the table stays exact', async (t) => {
  const server = await startPrivatePostgres()
  t.after(() => server.stop())
  const bootstrap = new pg.Client({ connectionString: `${server.url}/postgres` })
  await bootstrap.connect()
  await bootstrap.query('CREATE DATABASE ragstream')
  await bootstrap.end()
  // The sink fixtures read the admin URL from the environment when they load: point them at this server.
  process.env.RAGSTREAM_POSTGRES_URL = `${server.url}/ragstream`
  const { chunkProducer, createSinkEnv, diffTable, spawnSink, startProduction, waitForCatchUp } =
    await import('./support.ts')

  // Fixtures clean up in a subtest, so their hooks run before the server's own shutdown above.
  await t.test('the sink rides through both restarts', async (t) => {
    const env = await createSinkEnv(t, { dims: 16, partitions: PARTITIONS, batchLingerMs: 50 })
    const { config } = env
    const production = startProduction(await chunkProducer(t, config), config, { ids: 200, partitions: PARTITIONS })
    const sink = spawnSink(t, env, ['--batch-size', '300'])
    await sink.waitForEvent((e) => e.event === 'batch-committed', 90_000)

    // The sink notices each restart either mid-batch (a query fails and is retried with backoff) or
    // between batches (its idle connection dies and the next batch opens a new one).
    const noticed = (e: Record<string, unknown>) =>
      (e.event === 'retry' && String(e.what).startsWith('postgres')) || e.event === 'connection-lost'
    const restartsNoticed: number[] = []
    for (const mode of ['fast', 'immediate'] as const) {
      const committedBefore = sink.events.filter((e) => e.event === 'batch-committed').length
      const noticedBefore = sink.events.filter(noticed).length
      // The fixtures' admin connection dies with the server; it is only used after the restarts.
      server.restart(mode)
      await sink.waitForEvent(
        (e) =>
          e.event === 'batch-committed' &&
          sink.events.filter((x) => x.event === 'batch-committed').length > committedBefore,
        90_000,
      )
      restartsNoticed.push(sink.events.filter(noticed).length - noticedBefore)
      await sleep(500)
    }
    await production.stop()

    const admin = new pg.Client({ connectionString: `${server.url}/ragstream` })
    await admin.connect()
    t.after(() => admin.end().catch(() => {}))
    await waitForCatchUp(admin, config, PARTITIONS)
    sink.child.kill('SIGTERM')
    assert.equal(await sink.exited, 0, sink.stderr())

    const retries = sink.events.filter((e) => e.event === 'retry' && String(e.what).startsWith('postgres'))
    assert.ok(
      restartsNoticed.every((n) => n > 0),
      `the sink noticed each restart before committing again (per restart: ${restartsNoticed.join(', ')})`,
    )
    const diff = await diffTable(admin, config, production.expected)
    assert.deepEqual(
      { missing: diff.missing, extra: diff.extra, stale: diff.stale },
      { missing: [], extra: [], stale: [] },
    )
    t.diagnostic(
      `${production.counts.committed} committed events, ${diff.rows} rows, ${retries.length} postgres retries`,
    )
  })
})
