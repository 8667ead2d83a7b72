import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'

const run = promisify(execFile)
const preload = resolve('scripts/test-preload.js')

// `npm test` runs files concurrently with --test-force-exit, which can drop the last verdicts of a file
// (nodejs/node#64833): a failure among them would pass CI unseen. The preload must keep every verdict.
test('the test command reports every verdict of every file, the last failing one included', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rs-runner-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const pad = 'x'.repeat(2000) // long names fill the pipe, which is what loses the tail
  for (let f = 1; f <= 8; f++) {
    const last = f === 8 ? "test('last fails', () => { throw new Error('the lost verdict') })" : ''
    const body = `import { test } from 'node:test'\nfor (let i = 1; i <= 10; i++) test('t' + i + ' ${pad}', () => {})\n${last}\n`
    await writeFile(join(dir, `f${f}.test.mjs`), body)
  }
  const script = await readFile('scripts/test.sh', 'utf8')
  assert.match(script, /--test-force-exit --import \.\/scripts\/test-preload\.js/)
  for (let round = 0; round < 3; round++) {
    const out = await run(
      process.execPath,
      ['--import', preload, '--test', '--test-concurrency=2', '--test-force-exit', '--test-reporter=tap', '*.test.mjs'],
      // Without NODE_TEST_CONTEXT: this file runs under the test runner, and its children would report to it.
      { cwd: dir, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NODE_TEST_CONTEXT: undefined } },
    ).then(
      () => assert.fail('a failing test must fail the run'),
      (error: { stdout: string; code: number }) => error,
    )
    assert.equal(out.code, 1)
    assert.match(out.stdout, /^# tests 81$/m)
    assert.match(out.stdout, /^# fail 1$/m)
    assert.match(out.stdout, /the lost verdict/)
  }
})
