// `npm run bench [-- name ...]`: runs the benchmarks in bench/ one after another, each in its own
// process (so one's heap and JIT state never colour another's figures), and prints their output.
// Benchmarks are run on demand, never by `npm test`. Each compares against a baseline in the same run.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('.', import.meta.url))
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.replace(/\.ts$/, ''))
const wanted = process.argv.slice(2)
const unknown = wanted.filter((w) => !available.includes(w))
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}\navailable: ${available.join(', ')}\n`)
  process.exit(2)
}
let failed = 0
for (const name of wanted.length > 0 ? wanted : available) {
  process.stdout.write(`\n=== bench/${name}.ts\n`)
  const result = spawnSync(process.execPath, ['--expose-gc', `${dir}${name}.ts`], { stdio: 'inherit' })
  if (result.status !== 0) failed++
}
process.exit(failed > 0 ? 1 : 0)
