import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'

test('mapValues transforms values under the same key; null or undefined deletes downstream', async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table<{ n: number }>('in', { name: 'rows' })
    .mapValues((row, key) => (row.n === 0 ? undefined : { key, double: row.n * 2 }), { name: 'double' })
    .to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 2 })
  await driver.pipe('in', 'a', { n: 2 })
  await driver.pipe('in', 'a', { n: 0 })
  await driver.pipe('in', 'b', { n: 0 })
  assert.deepEqual(
    driver.readOutput('out').map((r) => [r.key, r.value]),
    [
      ['a', { key: 'a', double: 4 }],
      ['a', null],
    ],
  )
})

test('a throwing mapper dead-letters the record, named after the node', async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table<{ n: number }>('in', { name: 'rows' })
    .mapValues(
      (row) => {
        if (row.n > 1) throw new TypeError('too big')
        return row
      },
      { name: 'check' },
    )
    .to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 2 })
  await driver.pipe('in', 'a', { n: 5 })
  await driver.pipe('in', 'b', { n: 1 })
  const [dead] = driver.readDeadLetters()
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.node], 'check')
  assert.equal(dead.headers[DEAD_LETTER_HEADERS.message], 'too big')
  assert.deepEqual([...driver.readTable('out').keys()], ['b'])
})
