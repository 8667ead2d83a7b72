// A real PostgreSQL server restart mid-run, fast and then immediate (crash-like: no shutdown
// checkpoint), while chunk events keep arriving: the sink retries with backoff, skips nothing, and
// the table ends exact; its log names what went away (RS_SERVICE_UNAVAILABLE, PostgreSQL, the URL
// with its password masked, a hint). The server is the test's own, so other suites never see it go down.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { startPrivatePostgres } from '../support/private-postgres.ts'

const PARTITIONS = 2

test('postgres server restarts (fast, then immediate) mid-run: the sink names PostgreSQL at its masked URL, recovers, and the table stays exact', async (t) => {
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
    // The server trusts local connections, so a password in the URL is accepted and never needed:
    // it is there to be masked in every line the sink writes.
    const url = new URL(env.sinkUrl)
    url.password = 'hunter2-never-shown'
    const sink = spawnSink(t, { ...env, sinkUrl: url.toString() }, ['--batch-size', '300'])
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
    // Each restart is reported as the service it is, where it is, with what to do.
    const named = sink.events.filter(noticed).filter((e) => e.code === 'RS_SERVICE_UNAVAILABLE')
    assert.ok(
      named.length >= 2,
      `restarts reported as RS_SERVICE_UNAVAILABLE: ${JSON.stringify(sink.events.filter(noticed))}`,
    )
    for (const e of named) {
      assert.equal(e.service, 'PostgreSQL')
      assert.equal(e.address, url.toString().replace('hunter2-never-shown', '***'))
      assert.match(String(e.error), /^PostgreSQL is not reachable at postgres:\/\/[^:]+:\*\*\*@/)
      assert.match(String(e.hint), /retried with backoff, nothing is skipped/)
    }
    assert.ok(!`${JSON.stringify(sink.events)}${sink.stderr()}`.includes('hunter2'), 'the password is never written')

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
