import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DebeziumDecoder } from '../../src/cdc/debezium.ts'
import { rowChangeDecoding, TopologyBuilder, type RowChangeDecoder } from '../../src/dsl/index.ts'
import type { SourceRecord } from '../../src/runtime/task.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'

test('a Debezium table: rows upsert under the stable key, op=d and tombstones delete', async () => {
  const b = new TopologyBuilder({ applicationId: 'cdc' })
  b.cdcTable('pg.public.users', { name: 'users', ...rowChangeDecoding(new DebeziumDecoder({ valueFormat: 'json' })) }).to('users.out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 2 })
  const key = JSON.stringify({ schema: {}, payload: { id: 42 } })
  await driver.pipe('pg.public.users', key, { schema: {}, payload: { op: 'r', before: null, after: { id: 42, name: 'Ada' }, source: {} } })
  await driver.pipe('pg.public.users', key, { op: 'u', before: null, after: { id: 42, name: 'Ada L.' }, source: {} })
  await driver.pipe('pg.public.users', key, { op: 'd', before: { id: 42, name: 'Ada L.' }, after: null, source: {} })
  await driver.pipe('pg.public.users', key, null)
  await driver.pipe('pg.public.users', key, { op: 't' })
  assert.deepEqual(driver.readOutput('users.out').map((r) => [r.key, r.value]), [
    ['42', { id: 42, name: 'Ada' }],
    ['42', { id: 42, name: 'Ada L.' }],
    ['42', null],
  ])
  const [dead] = driver.readDeadLetters()
  assert.equal(dead.headers['ragstream.error.code'], 'RS_DECODE_FAILED')
})

test('a decoder\'s prepare runs once per batch with the topic\'s own records, before any decode', async () => {
  const log: string[] = []
  const decoder: RowChangeDecoder = {
    async prepare(records) {
      log.push(`prepare ${records.map((r) => r.key?.toString()).join(',')}`)
    },
    decode(record) {
      log.push(`decode ${record.key?.toString()}`)
      const source = { topic: record.topic, partition: record.partition, offset: record.offset, timestampMs: 0, position: null, table: null, snapshot: false }
      return { kind: 'upsert', op: 'upsert', key: record.key!.toString(), keyFields: {}, row: { v: 1 }, before: null, source }
    },
  }
  const b = new TopologyBuilder({ applicationId: 'avro' })
  b.table('plain', { name: 'plain' }).to('out1')
  b.cdcTable('avro.rows', { name: 'rows', ...rowChangeDecoding(decoder) }).to('out2')
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
  const records: SourceRecord[] = [{ topic: 'avro.rows', partition: 0, offset: 0n, timestamp: 0n, key: Buffer.from('a'), value: Buffer.from('x'), headers: new Map() }]
  assert.throws(() => processor.prefetchKeys(records), /call prepare\(records\) before prefetchKeys/)
  await processor.prepare!(records)
  assert.deepEqual([...processor.prefetchKeys(records).keys()], ['rows'])
  assert.equal(b.build().compile({ partitions: 1 }).prepare !== undefined, true)
  const plain = new TopologyBuilder({ applicationId: 'p' })
  plain.table('t', { name: 't' }).to('o')
  assert.equal('prepare' in plain.build().compile({ partitions: 1 }), false, 'no prepare when no decoder needs one')
})
