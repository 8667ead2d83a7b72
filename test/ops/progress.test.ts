// run and sink print a progress line every few seconds on a terminal, and nothing in JSON-log mode.
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { test } from 'node:test'
import { ago, isHumanOutput, startProgress } from '../../src/ops/progress.ts'

function stream(isTTY: boolean): PassThrough & { isTTY: boolean; text: () => string } {
  const s = new PassThrough() as PassThrough & { isTTY: boolean; text: () => string }
  const chunks: Buffer[] = []
  s.on('data', (c: Buffer) => chunks.push(c))
  s.isTTY = isTTY
  s.text = () => Buffer.concat(chunks).toString('utf8')
  return s
}

test('a terminal gets a progress line per interval; a pipe or RAGSTREAM_LOG_FORMAT=json gets none', async () => {
  const tty = stream(true)
  let n = 0
  const stop = startProgress({ out: tty, env: {}, intervalMs: 20, line: () => `records in ${++n}` })
  await new Promise((r) => setTimeout(r, 110))
  stop()
  const lines = tty.text().trim().split('\n')
  assert.ok(lines.length >= 2, tty.text())
  assert.match(lines[0], /^\d\d:\d\d:\d\d progress {2}records in 1$/)

  for (const [out, env] of [
    [stream(false), {}],
    [stream(true), { RAGSTREAM_LOG_FORMAT: 'json' }],
  ] as const) {
    const quiet = startProgress({ out, env, intervalMs: 10, line: () => 'x' })
    await new Promise((r) => setTimeout(r, 50))
    quiet()
    assert.equal(out.text(), '')
  }
  assert.equal(isHumanOutput({ isTTY: false }, { RAGSTREAM_LOG_FORMAT: 'human' }), true)
  assert.equal(ago(undefined), 'never')
  assert.equal(ago(1_000, 4_000), '3s ago')
  assert.equal(ago(0, 125_000), '2m05s ago')
})
