// The CLI shell: help lists commands, every command answers --help, unknown commands exit 2 with a hint.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { main } from '../../src/cli/main.ts'
import { COMMANDS } from '../../src/cli/commands.ts'

function capture(): { stream: Writable; text: () => string } {
  let out = ''
  const stream = new Writable({
    write(chunk, _enc, done) {
      out += String(chunk)
      done()
    },
  })
  return { stream, text: () => out }
}

async function run(argv: string[]) {
  const stdout = capture()
  const stderr = capture()
  const code = await main(argv, {
    stdout: stdout.stream as unknown as typeof process.stdout,
    stderr: stderr.stream as unknown as typeof process.stderr,
    env: {},
  })
  return { code, stdout: stdout.text(), stderr: stderr.text() }
}

test('ragstream --help lists every command', async () => {
  const { code, stdout } = await run(['--help'])
  assert.equal(code, 0)
  for (const name of Object.keys(COMMANDS)) assert.match(stdout, new RegExp(`^  ${name} `, 'm'))
})

test('every command has --help with its usage and options', async () => {
  for (const name of Object.keys(COMMANDS)) {
    const { code, stdout } = await run([name, '--help'])
    assert.equal(code, 0, `${name} --help`)
    assert.match(stdout, new RegExp(`^ragstream ${name}`), `${name} --help shows usage`)
    assert.match(stdout, /-h, --help/)
  }
})

test('an unknown command or option exits 2 and says what to do', async () => {
  const unknown = await run(['frobnicate'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /unknown command 'frobnicate'/)
  assert.match(unknown.stderr, /ragstream --help/)
  const badOption = await run(['stack', '--nope'])
  assert.equal(badOption.code, 78)
  assert.match(badOption.stderr, /RS_CONFIG_INVALID.*\n.*ragstream stack.*--nope/)
})
