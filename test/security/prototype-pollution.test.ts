import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseWhere } from '../../src/sink/query.ts'
import { loadConfig } from '../../src/config/file.ts'
import { ConfigError } from '../../src/errors.ts'

function assertPrototypeClean(): void {
  const probe = {} as Record<string, unknown>
  for (const key of ['x', 'ssl', 'options', 'polluted']) assert.equal(probe[key], undefined, `Object.prototype.${key}`)
  assert.equal(Object.keys(Object.prototype).length, 0)
}

test('--where refuses __proto__, constructor and prototype anywhere in a key, and pollutes nothing', () => {
  const hostile = [
    '__proto__.x=1',
    '__proto__.ssl=true',
    '__proto__.options=-c role=postgres',
    'metadata.__proto__.polluted=yes',
    'constructor.prototype.polluted=yes',
    'a.constructor.prototype.x=1',
    'prototype=1',
    'customer.__proto__=1',
  ]
  for (const clause of hostile) {
    assert.throws(
      () => parseWhere(['tenant=acme', clause]),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError && error.code === 'RS_CONFIG_INVALID')
        assert.deepEqual(
          error.problems.map((p) => p.path),
          ['--where[1]'],
        )
        assert.match(error.message, /not allowed/)
        return true
      },
      clause,
    )
    assertPrototypeClean()
  }
  // Ordinary nested keys still build the containment filter, and it serialises as before.
  const filter = parseWhere(['customer.tier=gold', 'customer.region=eu', 'proto=1', 'constructors=2'])
  assert.equal(
    JSON.stringify(filter.metadata),
    JSON.stringify({ customer: { tier: 'gold', region: 'eu' }, proto: 1, constructors: 2 }),
  )
})

test('a config file with __proto__ or constructor keys is refused field by field and changes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-pollution-'))
  const file = join(dir, 'config.json')
  writeFileSync(
    file,
    '{"__proto__": {"polluted": "yes", "sink": {"dimensions": 7}}, "sink": {"constructor": {"x": 1}, "__proto__": {"dimensions": 9}}}',
  )
  assert.throws(
    () => loadConfig({ file, env: {} }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError)
      assert.deepEqual(error.problems.map((p) => p.path).sort(), ['/__proto__', '/sink/__proto__', '/sink/constructor'])
      return true
    },
  )
  assertPrototypeClean()
  // A value that is only inherited (an object's constructor) is never read as a field's value.
  writeFileSync(file, '{"sink": {}}')
  const config = loadConfig({ file, env: {} })
  assert.equal(typeof config.sink.dimensions, 'number')
  assertPrototypeClean()
})
