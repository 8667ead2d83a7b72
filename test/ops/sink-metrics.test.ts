// `ragstream sink --metrics-port`: while the sink runs, /metrics shows its batches, commit time, rows,
// end-to-end freshness read back from Postgres and its consumer lag on the chunk topic.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { chunkEvent, chunkProducer, createSinkEnv, spawnSink } from '../sink/support.ts'
import { sampleSum } from './support.ts'

test(
  'sink --metrics-port: batch size, commit time, rows, freshness and lag are scraped with non-zero values',
  { timeout: 60_000 },
  async (t) => {
    const env = await createSinkEnv(t, { dims: 4, partitions: 2 })
    const producer = await chunkProducer(t, env.config)
    const sink = spawnSink(t, env, ['--metrics-port', '0'])
    const started = await sink.waitForEvent((e) => e.event === 'metrics')
    const url = String(started.url)
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    await sink.waitForEvent((e) => e.event === 'assigned' && Array.isArray(e.partitions) && e.partitions.length > 0)

    const messages = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => ({
        key: `c${i}`,
        partition: i % 2,
        value: await producer.encodeChunk(chunkEvent(env.config, { id: `c${i}` })),
      })),
    )
    await producer.send(messages)
    await sink.waitForEvent((e) => e.event === 'batch-committed' && Number(e.upserted) > 0)

    const deadline = Date.now() + 15_000
    let text: string
    for (;;) {
      text = await (await fetch(url)).text()
      if (
        sampleSum(text, 'ragstream_freshness_seconds_count') >= 10 &&
        /ragstream_consumer_lag\{component="sink"/.test(text)
      )
        break
      assert.ok(Date.now() < deadline, `metrics incomplete:\n${text}`)
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    const table = env.config.names.chunkTableName
    assert.equal(sampleSum(text, 'ragstream_sink_rows_total'), 10)
    assert.match(text, new RegExp(`ragstream_sink_rows_total\\{table="${table}",writer="0",op="upsert"\\} 10`))
    assert.ok(sampleSum(text, 'ragstream_sink_batch_size_count') >= 1)
    assert.ok(sampleSum(text, 'ragstream_sink_commit_seconds_count') >= 1)
    assert.equal(sampleSum(text, 'ragstream_freshness_seconds_count'), 10)
    assert.match(
      text,
      new RegExp(
        `ragstream_consumer_lag\\{component="sink",topic="${env.config.topic.replaceAll('.', '\\.')}",partition="0"\\} \\d+`,
      ),
    )
    assert.match(text, /ragstream_process_process_cpu_seconds_total \d/)

    sink.child.kill('SIGTERM')
    assert.equal(await sink.exitCode('the sink after SIGTERM'), 0, sink.stderr())
  },
)
