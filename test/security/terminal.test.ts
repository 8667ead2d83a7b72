import { test } from 'node:test'
import assert from 'node:assert/strict'
import { terminalSafe } from '../../src/security/terminal.ts'
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
