import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'

test("to(topic) writes JSON upserts and tombstones, partitioned by key over the sink topic's partitions", async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table('in', { name: 'rows' }).to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 2, sinkPartitions: { out: 7 } })
  for (const key of ['a', 'b', 'c', 'd']) await driver.pipe('in', key, { key })
  await driver.pipe('in', 'a', null)
  const out = driver.readOutput('out')
  for (const record of out) assert.equal(record.partition, partitionForString(record.key!, 7))
  assert.equal(out[4].rawValue, null)
  assert.deepEqual(out[0].rawValue, Buffer.from('{"key":"a"}'))
})

test('a custom encoder decides the bytes', async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table<{ n: number }>('in', { name: 'rows' }).to('out', {
    name: 'csv-out',
    encode: (key, value) => ({
      key: Buffer.from(key.toUpperCase()),
      value: value === null ? null : Buffer.from(`${key},${(value as { n: number }).n}`),
    }),
  })
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipe('in', 'a', { n: 1 })
  const [record] = driver.readOutput('out')
  assert.equal(record.key, 'A')
  assert.equal(record.value, 'a,1')
})

test('a value that is not JSON (a bigint) dead-letters its record instead of failing the batch', async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table<{ n: number }>('in', { name: 'rows' })
    .mapValues((row) => (row.n > 1 ? { n: BigInt(row.n) } : row))
    .to('out', { name: 'json-out' })
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipe('in', 'big', { n: 2 })
  await driver.pipe('in', 'small', { n: 1 })
  const [dead, ...more] = driver.readDeadLetters()
  assert.equal(more.length, 0)
  assert.equal(dead.key, 'big')
  assert.equal(dead.headers['ragstream.node'], 'json-out')
  assert.equal(dead.headers['ragstream.error.code'], 'RS_RECORD_INVALID')
  assert.deepEqual([...driver.readTable('out').keys()], ['small'])
  assert.deepEqual([...driver.readStore('rows').keys()], ['small'], "the failed record's table write is reverted")
})

test('an encoder that returns something other than bytes dead-letters the record', async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table<{ n: number }>('in', { name: 'rows' }).to('out', {
    name: 'bad-encoder',
    encode: (key, value) => ({ key: Buffer.from(key), value: JSON.stringify(value) as unknown as Buffer }),
  })
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipe('in', 'a', { n: 1 })
  const [dead] = driver.readDeadLetters()
  assert.equal(
    dead.headers['ragstream.error.message'],
    'the encoder must return { key: Buffer | null, value: Buffer | null }',
  )
  assert.equal(driver.readOutput('out').length, 0)
})
