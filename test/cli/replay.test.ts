// `ragstream replay` and `promote` arguments: wrong ones fail before any connection, naming the option.
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { main } from '../../src/cli/main.ts'

async function cli(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = ''
  const sink = (append: (s: string) => void) => new Writable({ write(chunk, _e, done) { append(String(chunk)); done() } })
  const code = await main(argv, { stdout: sink(() => {}) as unknown as typeof process.stdout, stderr: sink((s) => (stderr += s)) as unknown as typeof process.stderr, env: {} })
  return { code, stderr }
}

test('replay: a version, a real timestamp and a known provider are required, each named', async () => {
  const missing = await cli(['replay', 'support-copilot', '--from', 'yesterday', '--embedding', 'cohere'])
  assert.equal(missing.code, 78)
  assert.match(missing.stderr, /--to-version: required/)
  assert.match(missing.stderr, /--from: expected earliest or an ISO 8601 timestamp/)
  assert.match(missing.stderr, /--embedding: expected hashing or openai/)
  const model = await cli(['replay', 'support-copilot', '--to-version', 'v2', '--embedding', 'openai'])
  assert.match(model.stderr, /--embedding-model: required with --embedding openai/)
  const unknown = await cli(['replay', 'fraud-graph', '--to-version', 'v2', '--from', '2026-11-01T00:00:00Z'])
  assert.equal(unknown.code, 78)
  assert.match(unknown.stderr, /<topology>: expected one of support-copilot, knowledge-base/)
  const version = await cli(['replay', 'support-copilot', '--to-version', 'V2; DROP'])
  assert.match(version.stderr, /--to-version: expected a version like v2/)
})

test('promote: a topology and a version are required', async () => {
  const { code, stderr } = await cli(['promote', 'support-copilot'])
  assert.equal(code, 78)
  assert.match(stderr, /<topology> <version>: a topology name and a version are required/)
})
