// Every topology file has its test file here, and each pins its describe text.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { test } from 'node:test'

const topologies = new URL('../../topologies/', import.meta.url)
const tests = new URL('./', import.meta.url)

test('every file in topologies/ has its describe text pinned by test/topologies/<name>.test.ts', () => {
  const files = readdirSync(topologies).filter((f) => f.endsWith('.ts'))
  assert.ok(files.length > 0)
  for (const file of files) {
    const testFile = file.replace(/\.ts$/, '.test.ts')
    assert.ok(readdirSync(tests).includes(testFile), `missing test/topologies/${testFile}`)
    assert.match(readFileSync(new URL(testFile, tests), 'utf8'), /describe text is pinned/, testFile)
  }
})
