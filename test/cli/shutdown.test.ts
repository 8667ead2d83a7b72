// exitWhenStopped: a long-running command whose graceful stop has finished exits even if a client
// library left a timer running, logging what was open; one that left nothing exits on its own at once.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const NODE = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url))
const SHUTDOWN = fileURLToPath(new URL('../../src/cli/shutdown.ts', import.meta.url))

function stopped(leftRunning: boolean): { status: number | null; events: Record<string, unknown>[] } {
  const script = `
import { exitWhenStopped } from ${JSON.stringify(SHUTDOWN)}
${leftRunning ? 'setInterval(() => {}, 100) // what a client library left running' : ''}
process.exitCode = 3
exitWhenStopped((event) => console.log(JSON.stringify(event)), 300)
`
  const run = spawnSync(NODE, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 })
  const events = run.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
  return { status: run.status, events }
}

test('exitWhenStopped: a timer left running no longer holds the process: exit-forced names what was open, and the exit code is the command’s', () => {
  const { status, events } = stopped(true)
  assert.equal(status, 3)
  assert.equal(events.length, 1)
  assert.equal(events[0].event, 'exit-forced')
  assert.equal(events[0].graceMs, 300)
  assert.ok((events[0].open as string[]).includes('Timeout'), JSON.stringify(events[0]))
})

test('exitWhenStopped: with nothing left running the process exits on its own, without the event', () => {
  const { status, events } = stopped(false)
  assert.equal(status, 3)
  assert.deepEqual(events, [])
})
