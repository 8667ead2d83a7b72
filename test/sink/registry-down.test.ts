// The schema registry goes away while the sink runs (it is reached through a forwarder the test cuts;
// the registry itself serves everybody else): the sink cannot decode new chunk records, says so —
// RS_SERVICE_UNAVAILABLE, the schema registry, its URL with the password masked, a hint — retries,
// and once the registry is back indexes everything, nothing skipped.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { endpoints } from '../support/stack.ts'
import { startTcpForwarder } from '../support/tcp-forwarder.ts'
import { chunkProducer, createSinkEnv, diffTable, spawnSink, startProduction, waitForCatchUp } from './support.ts'

const PARTITIONS = 2
const PASSWORD = 'hunter2-never-shown'

test('registry down mid-run: the sink names the schema registry at its masked URL, retries, and indexes everything once it is back', async (t) => {
  const registry = new URL(endpoints.schemaRegistryUrl)
  const forwarder = await startTcpForwarder(t, registry)
  const through = new URL(registry)
  through.host = `127.0.0.1:${forwarder.port}`
  through.username = 'sink'
  through.password = PASSWORD

  const env = await createSinkEnv(t, { dims: 16, partitions: PARTITIONS, batchLingerMs: 50 })
  const { config } = env
  const previous = process.env.RAGSTREAM_SCHEMA_REGISTRY_URL
  process.env.RAGSTREAM_SCHEMA_REGISTRY_URL = through.toString()
  const sink = spawnSink(t, env, ['--batch-size', '300'])
  if (previous === undefined) delete process.env.RAGSTREAM_SCHEMA_REGISTRY_URL
  else process.env.RAGSTREAM_SCHEMA_REGISTRY_URL = previous
  await sink.waitForEvent((e) => e.event === 'assigned', 60_000)

  // The registry goes away before the sink has seen any chunk's schema.
  await forwarder.down()
  const production = startProduction(await chunkProducer(t, config), config, { ids: 100, partitions: PARTITIONS })
  const unavailable = (e: Record<string, unknown>): boolean => e.event === 'retry' && e.what === 'schema registry'
  await sink.waitForEvent(unavailable, 60_000)
  await sink.waitForEvent((e) => unavailable(e) && Number(e.attempt) >= 3, 60_000)
  // Tombstones need no schema: a batch of only tombstones may commit meanwhile (the adaptive batch close
  // writes small batches), but nothing that needed the registry.
  const committed = sink.events.filter((e) => e.event === 'batch-committed')
  assert.deepEqual(
    committed.filter((e) => Number(e.upserted) > 0 || Number(e.audits) > 0 || Number(e.rejects) > 0),
    [],
    `nothing was written undecoded: ${JSON.stringify(committed)}`,
  )

  await forwarder.up()
  await production.stop()
  await waitForCatchUp(env.admin, config, PARTITIONS)
  sink.child.kill('SIGTERM')
  assert.equal(await sink.exitCode('the sink after SIGTERM'), 0, sink.stderr())

  const masked = through.toString().replace(PASSWORD, '***').replace(/\/$/, '')
  for (const e of sink.events.filter(unavailable)) {
    assert.equal(e.code, 'RS_SERVICE_UNAVAILABLE')
    assert.equal(e.service, 'the schema registry')
    assert.equal(String(e.address).replace(/\/$/, ''), masked)
    assert.match(String(e.error), /^the schema registry is not reachable at http:\/\/sink:\*\*\*@127\.0\.0\.1:/)
    assert.match(String(e.hint), /retried with backoff, nothing is skipped/)
  }
  assert.ok(!`${JSON.stringify(sink.events)}${sink.stderr()}`.includes('hunter2'), 'the password is never written')
  const diff = await diffTable(env.admin, config, production.expected)
  assert.deepEqual(
    { missing: diff.missing, extra: diff.extra, stale: diff.stale },
    { missing: [], extra: [], stale: [] },
  )
  const rejects = await env.admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${config.names.rejectsTable}`)
  assert.equal(rejects.rows[0].n, 0, 'no record was rejected for a schema the registry could not be asked for')
})
