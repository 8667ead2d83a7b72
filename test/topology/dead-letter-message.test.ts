import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  DebeziumDecoder,
  DEAD_LETTER_HEADERS,
  TopologyBuilder,
  TopologyTestDriver,
  cdcTableDecoder,
} from '../../src/index.ts'
import { deadLetterMessage } from '../../src/topology/compile.ts'

test('a dead letter never quotes its record: not in the parser error of a compacted or a CDC source, not in a user throw', async () => {
  const builder = new TopologyBuilder({ applicationId: 'dl-quote' })
  builder.table('plain.rows', { name: 'plain' }).to('out.plain')
  builder
    .cdcTable('cdc.rows', { name: 'cdc', decode: cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' })).decode })
    .to('out.cdc')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 1 })
  const secret = 'jane.doe@example.com'
  await driver.pipe('plain.rows', 'k1', `${secret} wrote this, not JSON`) // V8: Unexpected token 'j', "jane.doe@…" is not valid JSON
  await driver.pipe('cdc.rows', '{"id":1}', `${secret}`)
  const dead = driver.readDeadLetters()
  assert.equal(dead.length, 2)
  for (const record of dead) {
    const message = record.headers[DEAD_LETTER_HEADERS.message]
    assert.ok(message.length > 0)
    assert.ok(!message.includes(secret) && !message.includes('jane'), message)
    assert.ok(record.rawValue?.toString().includes(secret), 'the record itself is kept, for replay')
  }
  assert.equal(
    deadLetterMessage(new TypeError("Cannot read properties of undefined (reading 'jane')")),
    "Cannot read properties of undefined (reading '…')",
  )
  await driver.close()
})
