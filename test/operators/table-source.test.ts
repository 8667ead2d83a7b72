import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder, type Decoder } from '../../src/dsl/index.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'

test('a compacted table: latest row per key wins, a null value deletes, deleting an absent key emits nothing', async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table('in', { name: 'rows' }).to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 2 })
  await driver.pipe('in', 'a', { v: 1 })
  await driver.pipe('in', 'a', { v: 2 })
  await driver.pipe('in', 'a', null)
  await driver.pipe('in', 'ghost', null)
  assert.deepEqual(driver.readOutput('out').map((r) => [r.key, r.value]), [['a', { v: 1 }], ['a', { v: 2 }], ['a', null]])
  assert.equal(driver.readStore('rows').size, 0)
})

test('a CDC table decodes with its decoder, which gets the source record; value null deletes', async () => {
  const seen: string[] = []
  const decode: Decoder = (key, value, record) => {
    seen.push(`${record.topic}@${record.offset}`)
    const envelope = value === null ? null : JSON.parse(value.toString())
    return { key: JSON.parse(key!.toString()).id, value: envelope === null || envelope.op === 'd' ? null : envelope.after }
  }
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.cdcTable('db.rows', { name: 'rows', decode }).to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipe('db.rows', '{"id":"7"}', { op: 'c', after: { name: 'x' } })
  await driver.pipe('db.rows', '{"id":"7"}', { op: 'd', after: null })
  await driver.pipe('db.rows', '{"id":"7"}', null)
  assert.deepEqual(driver.readOutput('out').map((r) => [r.key, r.value]), [['7', { name: 'x' }], ['7', null]])
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
    driver.readDeadLetters().map((r) => [r.headers[DEAD_LETTER_HEADERS.code], r.headers[DEAD_LETTER_HEADERS.message], r.headers[DEAD_LETTER_HEADERS.node]]),
    [
      ['RS_DECODE_FAILED', 'bad envelope', 'rows'],
      ['RS_DECODE_FAILED', 'the decoder returned no string key', 'rows'],
    ],
  )
  assert.deepEqual([...driver.readTable('out').keys()], ['fine'])
})
