// Every TypeScript example of docs/rag-tail.md runs, as written (its `'ragstream'` imports pointed at
// src/index.ts): the operator reference cannot drift from the code.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const doc = readFileSync(join(ROOT, 'docs/rag-tail.md'), 'utf8')
const examples = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1])
const index = pathToFileURL(join(ROOT, 'src/index.ts')).href

test('docs/rag-tail.md has an example per operator', () => {
  assert.ok(examples.length >= 5, `${examples.length} examples`)
  for (const op of ['.govern(', '.chunk(', '.embed(', '.toChunks(', 'subject:', 'MemoryRagServices'])
    assert.ok(
      examples.some((e) => e.includes(op)),
      `no example uses ${op}`,
    )
})

for (const [i, example] of examples.entries()) {
  const title = example.split('\n').find((l) => l.startsWith('import {')) ?? ''
  test(`docs/rag-tail.md example ${i + 1} runs (${title.slice(0, 60)})`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rs-doc-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, `example-${i + 1}.ts`)
    writeFileSync(file, example.replaceAll("from 'ragstream'", `from '${index}'`))
    await import(pathToFileURL(file).href)
  })
}
