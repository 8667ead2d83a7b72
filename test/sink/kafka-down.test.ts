// Kafka goes away under a running sink (a private broker, SIGKILLed and restarted; the shared one is
// never touched): the sink says so — RS_SERVICE_UNAVAILABLE, Kafka, the brokers, a hint — keeps
// retrying instead of exiting, and once the broker is back indexes everything, nothing skipped.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startPrivateKafka } from '../support/private-kafka.ts'

const PARTITIONS = 2

test('kafka down under the sink: its log names Kafka at the brokers with a hint, it keeps retrying, and the table ends exact', async (t) => {
  const kafka = await startPrivateKafka()
  t.after(() => kafka.stop())
  // The fixtures (and the sink they spawn) read the brokers from the environment when they load.
  process.env.RAGSTREAM_KAFKA_BROKERS = kafka.brokers.join(',')
  const { chunkProducer, createSinkEnv, diffTable, spawnSink, startProduction, waitForCatchUp } =
    await import('./support.ts')

  // Fixtures clean up in a subtest, so their hooks run before the broker's own shutdown above.
  await t.test('the sink rides through the broker restart', async (t) => {
    const env = await createSinkEnv(t, { dims: 16, partitions: PARTITIONS, batchLingerMs: 50 })
    const { config } = env
    const sink = spawnSink(t, env, ['--batch-size', '300'])
    const before = startProduction(await chunkProducer(t, config), config, { ids: 100, partitions: PARTITIONS })
    await sink.waitForEvent((e) => e.event === 'batch-committed', 90_000)
    await before.stop()

    await kafka.kill()
    const named = (e: Record<string, unknown>): boolean => e.event === 'retry' && e.service === 'Kafka'
    await sink.waitForEvent(named, 60_000)
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    assert.equal(sink.child.exitCode, null, `the sink keeps running while Kafka is away: ${sink.stderr()}`)
    await kafka.start()

    // A restarted broker's transaction coordinator takes a moment to load: the test waits for it with
    // an empty transaction, from a fresh producer each time (one whose transaction failed is not reused).
    let producer = await chunkProducer(t, config)
    for (let attempt = 0; ; attempt++) {
      try {
        await producer.send([])
        break
      } catch (error) {
        if (attempt >= 30) throw error
        await producer.close()
        await new Promise((resolve) => setTimeout(resolve, 1_000))
        producer = await chunkProducer(t, config)
      }
    }
    const after = startProduction(producer, config, { ids: 100, partitions: PARTITIONS })
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    await after.stop()
    await waitForCatchUp(env.admin, config, PARTITIONS)
    sink.child.kill('SIGTERM')
    assert.equal(await sink.exitCode('the sink after SIGTERM'), 0, sink.stderr())

    for (const e of sink.events.filter(named)) {
      assert.equal(e.code, 'RS_SERVICE_UNAVAILABLE')
      assert.equal(e.address, kafka.brokers.join(','))
      assert.match(String(e.error), /^Kafka is not reachable at /)
      assert.match(String(e.hint), /retried with backoff, nothing is skipped/)
    }
    // No Kafka failure of the sink's own is left unnamed.
    for (const e of sink.events)
      if (
        e.event === 'retry' &&
        String(e.what).startsWith('kafka') &&
        /ECONNREFUSED|Connection closed/.test(String(e.error))
      )
        assert.equal(e.service, 'Kafka', JSON.stringify(e))
    const expected = new Map([...before.expected, ...after.expected])
    const diff = await diffTable(env.admin, config, expected)
    assert.deepEqual(
      { missing: diff.missing, extra: diff.extra, stale: diff.stale },
      { missing: [], extra: [], stale: [] },
    )
    t.diagnostic(
      `${before.counts.committed + after.counts.committed} committed events, ${diff.rows} rows, ${sink.events.filter(named).length} named Kafka retries`,
    )
  })
})
