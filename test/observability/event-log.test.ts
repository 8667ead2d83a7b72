import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { eventWriter } from '../../src/observability/event-log.ts'

function sink(isTTY: boolean): { stream: Writable & { isTTY?: boolean }; text: () => string } {
  let out = ''
  const stream = Object.assign(
    new Writable({
      write(chunk, _e, done) {
        out += String(chunk)
        done()
      },
    }),
    { isTTY },
  )
  return { stream, text: () => out }
}

test('events are JSON lines off a terminal (bigints as strings)', () => {
  const out = sink(false)
  eventWriter(out.stream, {})({ time: '2026-11-26T12:03:04.000Z', event: 'batch-committed', partition: 2, offset: 42n })
  assert.deepEqual(JSON.parse(out.text()), {
    time: '2026-11-26T12:03:04.000Z',
    event: 'batch-committed',
    partition: 2,
    offset: '42',
  })
})

test('on a terminal, one readable line per event; RAGSTREAM_LOG_FORMAT overrides', () => {
  const tty = sink(true)
  eventWriter(
    tty.stream,
    {},
  )({ time: '2026-11-26T12:03:04.000Z', host: 'vm', event: 'batch-committed', partition: 2, records: 500 })
  assert.equal(tty.text(), '12:03:04 batch-committed  partition=2 records=500\n')
  const forced = sink(true)
  eventWriter(forced.stream, { RAGSTREAM_LOG_FORMAT: 'json' })({ event: 'stopped' })
  assert.equal(forced.text(), '{"event":"stopped"}\n')
  const human = sink(false)
  eventWriter(human.stream, { RAGSTREAM_LOG_FORMAT: 'human' })({ event: 'stopped' })
  assert.match(human.text(), /^\d\d:\d\d:\d\d stopped\n$/)
})

test('event lines never carry a URL password, nor a raw control or bidi character', () => {
  const event = {
    event: 'retry',
    error: 'fetch http://reg:s3cret@10.0.0.5:8081/x failed \u001b]0;pwned\u0007 key a\u202eb',
  }
  const json = sink(false)
  eventWriter(json.stream, {})(event)
  assert.doesNotMatch(json.text(), /s3cret/)
  assert.match(json.text(), /reg:\*\*\*@10\.0\.0\.5/)
  // JSON lines escape them (C0 by JSON itself, bidi and C1 by jsonSafe): the same JSON, nothing a terminal acts on.
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  assert.doesNotMatch(json.text().trimEnd(), /[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/)
  assert.match((JSON.parse(json.text()) as { error: string }).error, /key a\u202eb$/)
  const human = sink(true)
  eventWriter(human.stream, {})(event)
  assert.doesNotMatch(human.text(), /s3cret/)
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  assert.doesNotMatch(human.text().trimEnd(), /[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/)
})
