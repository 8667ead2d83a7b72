import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatError } from '../../src/cli/command.ts'
import { RagstreamError } from '../../src/errors.ts'
import { formatReceipt, receiptJson, verificationQuery } from '../../src/governance/forget/receipt.ts'
import { formatStatus, type TopologyStatus } from '../../src/ops/status.ts'
import { jsonSafe, terminalSafe } from '../../src/security/terminal.ts'
import { formatNeighbours, type NeighbourRow } from '../../src/sink/query.ts'

const HOSTILE = [
  '\u001b[2J\u001b[H', // clear screen, cursor home
  '\u001b]0;pwned\u0007', // window title (OSC … BEL)
  '\u009b31m', // C1 CSI
  'abc\u202edcba', // right-to-left override
  '\u2066isolate\u2069',
  'line\rover',
  'back\bspace\u007f',
]

test('control and bidi characters become U+FFFD; text, tabs and newlines stay', () => {
  for (const text of HOSTILE) {
    const safe = terminalSafe(text)
    assert.doesNotMatch(
      safe,
      // eslint-disable-next-line no-control-regex -- matching control characters is the point
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/,
      JSON.stringify(text),
    )
    assert.match(safe, /\uFFFD/)
  }
  assert.equal(terminalSafe('naïve café 東京 ✓\tok\n'), 'naïve café 東京 ✓\tok\n')
  assert.equal(terminalSafe('a\nb', { singleLine: true }), 'a\uFFFDb')
})

test('ragstream query prints no escape sequence or bidi override from the index', () => {
  const row: NeighbourRow = {
    score: 0.5,
    entity_type: 'ticket\u001b[31m',
    entity_key: 'k\u202e1',
    chunk_id: 'c\u001b]0;x\u0007',
    content: HOSTILE.join(' '),
    source_topic: 't\u0085',
    source_partition: 0,
    source_offset: '1',
    source_ts: new Date(0),
    visible_at: new Date(0),
    topology_version: 'v1\u2067',
    embedding_model: 'm\u009b',
  }
  const out = formatNeighbours([row])
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  assert.doesNotMatch(out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/)
  assert.equal(out.split('\n').length, 4, 'a header, a rule, one row line, and the final newline')
})

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/

test('JSON output escapes what a terminal would act on, losslessly', () => {
  const value = { content: HOSTILE.join(' '), key: 'k\u202e1', nested: ['\u0085', '\u2028'] }
  const json = jsonSafe(JSON.stringify(value))
  assert.doesNotMatch(json, RAW)
  assert.deepEqual(JSON.parse(json), value)
  assert.equal(jsonSafe('{"a":"naïve 東京"}'), '{"a":"naïve 東京"}')
})

test('status, forget receipts and error messages print no escape sequence or bidi override', () => {
  // A group member's ids and host are whatever the client that joined said.
  const member = {
    memberId: 'm\u001b[2J',
    instanceId: 'i\u202e1',
    clientId: 'c\u001b]0;pwned\u0007',
    host: '/10.0.0.5\u009b',
    assignments: [],
    tasks: [0],
  }
  const lag = { records: 0, oldestSeconds: 0, drainSeconds: 0 }
  const status: TopologyStatus = {
    topology: 't',
    sqlTopology: 't',
    view: 'rag.t',
    activeVersion: 'v1',
    freshnessWindowSeconds: 300,
    warnings: ['group lookup failed: \u001b[31mred'],
    versions: [
      {
        version: 'v1',
        active: true,
        applicationId: 'app',
        chunkTopic: 'chunks',
        table: 'rag.t_v1',
        processor: {
          group: 'app',
          seen: true,
          members: 1,
          groupState: 'Stable',
          assignment: [member],
          lag: 0,
          lagSeconds: lag,
          partitions: [],
        },
        sink: {
          group: 'sink',
          members: 1,
          groupState: 'Stable',
          assignment: [member],
          lag: 0,
          lagSeconds: lag,
          partitions: [],
        },
        freshness: null,
        stores: [],
      },
    ],
  }
  const text = formatStatus(status)
  assert.doesNotMatch(text.replaceAll('\n', ''), RAW)
  assert.match(text, /member i\uFFFD1/)

  const receipt = {
    requestId: 'req\u001b[2J\u202e',
    subjectHash: '0'.repeat(64),
    topology: 'support',
    chunksTombstoned: 0,
    rowsDeleted: { 'ragstream.support_v1': 0 },
    requestedAtMs: 0,
    confirmedAtMs: 1,
    verification: verificationQuery(['ragstream.support_v1']),
    remaining: 0,
  }
  assert.doesNotMatch(formatReceipt(receipt).replaceAll('\n', ''), RAW)
  assert.doesNotMatch(receiptJson(receipt), RAW)
  assert.equal(JSON.parse(receiptJson(receipt)).requestId, receipt.requestId)

  const error = new RagstreamError('RS_DECODE_FAILED', 'record key "\u001b]0;pwned\u0007" is bad', {
    hint: 'see \u202eevil',
  })
  const printed = formatError(error, {})
  assert.doesNotMatch(printed.replaceAll('\n', ''), RAW)
  assert.match(printed, /^error RS_DECODE_FAILED: /)
  assert.doesNotMatch(formatError(new Error('raw \u009b31m client error'), {}).replaceAll('\n', ''), RAW)
})
