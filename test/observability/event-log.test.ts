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
