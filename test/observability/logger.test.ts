import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/observability/logger.ts'

function sink(isTTY = false): { stream: Writable & { isTTY?: boolean }; lines: () => string[] } {
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
  return { stream, lines: () => out.trim().split('\n') }
}

test('json lines carry the component and fields, and redact secrets', () => {
  const out = sink()
  const log = createLogger('sink', { format: 'json', destination: out.stream })
  log.info({ table: 'support_v1', password: 'hunter2', auth: { token: 'abc' } }, 'batch committed')
  const [line] = out.lines()
  const event = JSON.parse(line)
  assert.equal(event.component, 'sink')
  assert.equal(event.msg, 'batch committed')
  assert.equal(event.table, 'support_v1')
  assert.equal(event.password, '***')
  assert.equal(event.auth.token, '***')
  assert.doesNotMatch(line, /hunter2|abc/)
})

test('on a terminal, one readable line per event', () => {
  const out = sink(true)
  const log = createLogger('processor', { destination: out.stream, format: 'auto' })
  log.warn({ partition: 3 }, 'rebalancing')
  assert.match(out.lines()[0], /^\d\d:\d\d:\d\d WARN {2}\[processor\] rebalancing {2}partition=3$/)
})

test('a URL password in a message or field never reaches a log line', () => {
  for (const format of ['json', 'human'] as const) {
    const out = sink(format === 'human')
    const log = createLogger('sink', { format, destination: out.stream })
    log.error(
      { error: 'connect to postgres://sink:s3cret@db/rag failed' },
      'registry http://u:p4ss@reg:8081 down \u001b[2J',
    )
    const text = out.lines().join('\n')
    assert.doesNotMatch(text, /s3cret|p4ss/, format)
    assert.match(text, /postgres:\/\/sink:\*\*\*@db/)
    if (format === 'human') assert.ok(!text.includes('\u001b'), 'no escape sequence on a terminal')
  }
})
