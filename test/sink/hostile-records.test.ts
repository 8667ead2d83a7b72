// Hostile records on the chunk topic, against a running sink process: each lands in sink_rejects with
// its position and a reason, the next good record is indexed within seconds, a restarted sink starts
// (nothing it cannot write stops it twice), and its memory stays bounded.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { SINK_LIMIT_DEFAULTS } from '../../src/sink/config.ts'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, spawnSink, waitFor } from './support.ts'

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024
}

test('sink: a 100 KB key, a key just over and just under the limit, a huge entity key, wrong magic byte, an unknown schema id and a truncated body are rejected with context; good records keep flowing, also after a restart', async (t) => {
  const env = await createSinkEnv(t, { dims: 8 })
  const { config } = env
  const producer = await chunkProducer(t, config)
  const limit = SINK_LIMIT_DEFAULTS.maxKeyBytes
  const good = async (id: string) => ({ key: id, value: await producer.encodeChunk(chunkEvent(config, { id })) })
  const hugeKey = randomBytes(75_000).toString('base64') // 100 000 bytes
  const over = `o${'x'.repeat(limit)}` // limit + 1 bytes
  const under = `u${'y'.repeat(limit - 1)}` // exactly the limit
  const valid = await producer.encodeChunk(chunkEvent(config, { id: 'shape' }))
  const unknownSchema = Buffer.from(valid)
  unknownSchema.writeUInt32BE(2_000_000_000, 1)
  const hostile = [
    { key: hugeKey, value: await producer.encodeChunk(chunkEvent(config, { id: hugeKey })), reason: /100000 bytes/ },
    { key: hugeKey, value: null, reason: /100000 bytes/ }, // a tombstone with the same key
    { key: over, value: await producer.encodeChunk(chunkEvent(config, { id: over })), reason: /1025 bytes/ },
    {
      key: 'entity-huge',
      value: await producer.encodeChunk(
        chunkEvent(config, { id: 'entity-huge', entity: randomBytes(30_000).toString('base64') }),
      ),
      reason: /entity type \+ key/,
    },
    { key: 'magic', value: Buffer.concat([Buffer.from([1]), valid.subarray(1)]), reason: /wire format/ },
    { key: 'unknown-schema', value: unknownSchema, reason: /unknown to the schema registry/ },
    { key: 'truncated', value: valid.subarray(0, 12), reason: /Avro decode failed/ },
  ]
  const sink = spawnSink(t, env)
  await sink.waitForEvent((e) => e.event === 'assigned' && (e.partitions as number[]).includes(0))
  await producer.send([await good('before#0')])
  await producer.send(hostile.map(({ key, value }) => ({ key, value })))
  const sentAt = Date.now()
  await producer.send([
    await good('after#0'),
    { key: under, value: await producer.encodeChunk(chunkEvent(config, { id: under, entity: 'u' })) },
  ])
  await waitFor(
    'the good records after the hostile ones',
    async () => (await readChunks(env.admin, config)).has('after#0'),
    20_000,
    100,
  )
  const within = Date.now() - sentAt
  t.diagnostic(`good record after ${hostile.length} hostile ones indexed ${within} ms after it was produced`)
  assert.ok(within < 10_000, `indexed within seconds (${within} ms)`)
  const rows = await readChunks(env.admin, config)
  assert.ok(rows.has(under), 'a key of exactly the limit is indexed')
  assert.ok(rows.has('before#0'))

  const rejects = await env.admin.query<{
    partition: number
    offset: string
    error_code: string
    message: string
    record_key: string | null
    source_topic: string | null
    source_partition: number | null
    source_offset: string | null
  }>(
    `SELECT partition, "offset"::text, error_code, message, record_key, source_topic, source_partition, source_offset::text
     FROM ${config.names.rejectsTable} ORDER BY "offset"`,
  )
  assert.equal(rejects.rowCount, hostile.length, JSON.stringify(rejects.rows.map((r) => r.message)))
  rejects.rows.forEach((r, i) => {
    assert.match(r.message, hostile[i].reason, `record ${i}: ${r.message}`)
    assert.equal(r.partition, 0)
    assert.ok(r.error_code === 'RS_RECORD_INVALID' || r.error_code === 'RS_DECODE_FAILED')
    assert.ok((r.record_key ?? '').length <= 300, 'the key is a bounded excerpt')
  })
  // A chunk event that decoded names the change it was derived from (its lineage); an undecodable one cannot.
  const lineage = (key: string) => {
    const r = rejects.rows[hostile.findIndex((h) => h.key === key)]
    return [r.source_topic, r.source_partition, r.source_offset]
  }
  assert.deepEqual(lineage('entity-huge'), ['cdc.tickets', 0, '1'])
  for (const key of ['magic', 'unknown-schema', 'truncated']) assert.deepEqual(lineage(key), [null, null, null], key)
  const rss = rssMb(sink.child.pid!)
  t.diagnostic(`sink RSS after the hostile records: ${rss.toFixed(0)} MB`)
  assert.ok(rss < 400, `RSS bounded (${rss.toFixed(0)} MB)`)

  // A restart reads from the stored offsets: it starts, rejects nothing twice, and keeps indexing.
  sink.child.kill('SIGKILL')
  await sink.exitCode('the killed sink', 10_000)
  const again = spawnSink(t, env)
  await again.waitForEvent((e) => e.event === 'assigned' && (e.partitions as number[]).includes(0))
  await producer.send([await good('restarted#0')])
  await waitFor(
    'a record after the restart',
    async () => (await readChunks(env.admin, config)).has('restarted#0'),
    20_000,
    100,
  )
  const count = await env.admin.query(`SELECT count(*)::int AS n FROM ${config.names.rejectsTable}`)
  assert.equal(count.rows[0].n, hostile.length)
})
