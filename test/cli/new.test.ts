// `ragstream new <name>` scaffolds an app whose generated unit test passes with no service running,
// and whose file every command takes by name (through the generated config file).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLI = join(ROOT, 'bin/ragstream.ts')
/** Nothing listens on port 1: a generated test that touched a service would fail. */
const NO_SERVICES = {
  RAGSTREAM_KAFKA_BROKERS: '127.0.0.1:1',
  RAGSTREAM_REDIS_URL: 'redis://127.0.0.1:1',
  RAGSTREAM_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1',
  RAGSTREAM_POSTGRES_URL: 'postgres://nobody@127.0.0.1:1/none',
}

function run(args: string[], cwd: string) {
  return spawnSync(process.execPath, args, {
    cwd,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...NO_SERVICES },
    timeout: 60_000,
  })
}

test('ragstream new: topology file, driver test and config; the test passes offline; describe finds the app by name', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-new-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const created = run([CLI, 'new', 'product-reviews'], dir)
  assert.equal(created.status, 0, created.stderr)
  for (const file of ['src/product-reviews.ts', 'test/product-reviews.test.ts', 'ragstream.json', 'package.json'])
    assert.match(created.stdout, new RegExp(`created ${file.replace('.', '\\.')}`))
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'ragstream.json'), 'utf8')).apps, {
    'product-reviews': 'src/product-reviews.ts',
  })
  // In this checkout the package is its sources: point the generated imports at them.
  for (const file of ['src/product-reviews.ts', 'test/product-reviews.test.ts']) {
    const path = join(dir, file)
    writeFileSync(path, readFileSync(path, 'utf8').replace("from 'ragstream'", `from '${join(ROOT, 'src/index.ts')}'`))
  }
  const tested = run(['--test', 'test/product-reviews.test.ts'], dir)
  assert.equal(tested.status, 0, `${tested.stdout}\n${tested.stderr}`)
  assert.match(tested.stdout, /ℹ pass 1/)

  const described = run([CLI, 'describe', 'product-reviews', '--config', 'ragstream.json'], dir)
  assert.equal(described.status, 0, described.stderr)
  assert.match(described.stdout, /Topology: product-reviews/)
  assert.match(described.stdout, /product_reviews\.public\.product_reviews/)

  const again = run([CLI, 'new', 'product-reviews'], dir)
  assert.equal(again.status, 78)
  assert.match(again.stderr, /src\/product-reviews\.ts: exists already/)
  assert.match(again.stderr, /hint: .*--force/)
  const bad = run([CLI, 'new', 'Bad_Name'], dir)
  assert.equal(bad.status, 78)
  assert.match(bad.stderr, /<name>: "Bad_Name" must match/)
})

test('the installed CLI on a Node.js older than 24 says what to install instead of failing on a .ts file', () => {
  const faked =
    'data:text/javascript,Object.defineProperty(process, "versions", { value: { ...process.versions, node: "20.11.1" } })'
  const r = spawnSync(process.execPath, ['--import', faked, join(ROOT, 'bin/ragstream.js'), 'describe', 'x.ts'], {
    encoding: 'utf8',
  })
  assert.equal(r.status, 78)
  assert.match(r.stderr, /error RS_CONFIG_INVALID: ragstream needs Node\.js 24 or later; this is Node\.js v20\.11\.1/)
  assert.match(r.stderr, /hint: .*install it \(nvm install 24/)
})
