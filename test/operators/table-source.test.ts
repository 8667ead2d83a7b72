import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder, type Decoder } from '../../src/dsl/index.ts'
import type { SourceRecord } from '../../src/runtime/task.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'

test('a compacted table: latest row per key wins, a null value deletes, deleting an absent key emits nothing', async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table('in', { name: 'rows' }).to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 2 })
  await driver.pipe('in', 'a', { v: 1 })
  await driver.pipe('in', 'a', { v: 2 })
  await driver.pipe('in', 'a', null)
  await driver.pipe('in', 'ghost', null)
  assert.deepEqual(
    driver.readOutput('out').map((r) => [r.key, r.value]),
    [
      ['a', { v: 1 }],
      ['a', { v: 2 }],
      ['a', null],
    ],
  )
  assert.equal(driver.readStore('rows').size, 0)
})

test('a CDC table decodes with its decoder, which gets the source record; value null deletes', async () => {
  const seen: string[] = []
  const decode: Decoder = (key, value, record) => {
    seen.push(`${record.topic}@${record.offset}`)
    const envelope = value === null ? null : JSON.parse(value.toString())
    return {
      key: JSON.parse(key!.toString()).id,
      value: envelope === null || envelope.op === 'd' ? null : envelope.after,
    }
  }
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.cdcTable('db.rows', { name: 'rows', decode }).to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipe('db.rows', '{"id":"7"}', { op: 'c', after: { name: 'x' } })
  await driver.pipe('db.rows', '{"id":"7"}', { op: 'd', after: null })
  await driver.pipe('db.rows', '{"id":"7"}', null)
  assert.deepEqual(
    driver.readOutput('out').map((r) => [r.key, r.value]),
    [
      ['7', { name: 'x' }],
      ['7', null],
    ],
  )
  assert.deepEqual(seen.slice(-3), ['db.rows@0', 'db.rows@1', 'db.rows@2'])
})

test('a decoder that throws or returns no string key dead-letters the record as RS_DECODE_FAILED', async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.cdcTable('db.rows', {
    name: 'rows',
    decode: (key) => {
      if (key?.toString() === 'boom') throw new Error('bad envelope')
      return { key: key?.toString() === 'numeric' ? (1 as unknown as string) : key!.toString(), value: {} }
    },
  }).to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipe('db.rows', 'boom', 'x')
  await driver.pipe('db.rows', 'numeric', 'x')
  await driver.pipe('db.rows', 'fine', 'x')
  assert.deepEqual(
    driver
      .readDeadLetters()
      .map((r) => [
        r.headers[DEAD_LETTER_HEADERS.code],
        r.headers[DEAD_LETTER_HEADERS.message],
        r.headers[DEAD_LETTER_HEADERS.node],
      ]),
    [
      ['RS_DECODE_FAILED', 'bad envelope', 'rows'],
      ['RS_DECODE_FAILED', 'the decoder returned no string key', 'rows'],
    ],
  )
  assert.deepEqual([...driver.readTable('out').keys()], ['fine'])
})

test("a decoder's prepare runs once per batch with the topic's own records, before any decode; prefetchKeys refuses an unprepared batch", async () => {
  const log: string[] = []
  const b = new TopologyBuilder({ applicationId: 'avro' })
  b.table('plain', { name: 'plain' }).to('out1')
  b.cdcTable('avro.rows', {
    name: 'rows',
    prepare: async (records) => {
      log.push(`prepare ${records.map((r) => r.key?.toString()).join(',')}`)
    },
    decode: (key) => {
      log.push(`decode ${key?.toString()}`)
      return { key: key!.toString(), value: { v: 1 } }
    },
  }).to('out2')
  const topology = b.build()
  const driver = new TopologyTestDriver(topology, { partitions: 1 })
  await driver.pipeBatch([
    { topic: 'avro.rows', key: 'a', value: 'x' },
    { topic: 'plain', key: 'p', value: { v: 0 } },
    { topic: 'avro.rows', key: 'b', value: 'x' },
  ])
  assert.deepEqual(log, ['prepare a,b', 'decode a', 'decode b'])
  assert.equal(driver.readTable('out2').size, 2)

  const processor = topology.compile({ partitions: 1 })
  const records: SourceRecord[] = [
    {
      topic: 'avro.rows',
      partition: 0,
      offset: 0n,
      timestamp: 0n,
      key: Buffer.from('a'),
      value: Buffer.from('x'),
      headers: new Map(),
    },
  ]
  assert.throws(() => processor.prefetchKeys(records), /call prepare\(records\) before prefetchKeys/)
  await processor.prepare!(records)
  assert.deepEqual([...processor.prefetchKeys(records).keys()], ['rows'])
  const plain = new TopologyBuilder({ applicationId: 'p' })
  plain.table('t', { name: 't' }).to('o')
  assert.equal('prepare' in plain.build().compile({ partitions: 1 }), false, 'no prepare when no decoder needs one')
})
