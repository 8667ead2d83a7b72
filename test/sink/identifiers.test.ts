// Hostile names in topology or table configuration are rejected with RS_IDENTIFIER_INVALID naming the field.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RagstreamError } from '../../src/errors.ts'
import { resolveSinkConfig, type SinkConfigInput } from '../../src/sink/config.ts'
import { checkIdentifier, quoteIdent } from '../../src/sink/identifiers.ts'

const base: SinkConfigInput = { topology: 'support', dims: 4 }

const hostile = [
  'a"b',
  'x"; DROP TABLE students; --',
  'semi;colon',
  'ünïcödé',
  'tab\tname',
  'new\nline',
  'Upper',
  '',
  'a'.repeat(64),
  'é'.repeat(32),
  'null\u0000byte',
]

function assertRejected(input: SinkConfigInput, field: string, label: string): void {
  assert.throws(
    () => resolveSinkConfig(input),
    (error: unknown) => {
      assert.ok(error instanceof RagstreamError, `${label}: a RagstreamError`)
      assert.equal(error.code, 'RS_IDENTIFIER_INVALID', label)
      assert.equal(error.context.field, field, label)
      assert.ok(error.message.startsWith(`${field}:`), `${label}: message names the field: ${error.message}`)
      return true
    },
  )
}

test('identifiers: hostile topology, version, schema and role names are rejected naming the field', () => {
  const fields: [keyof SinkConfigInput, string][] = [
    ['topology', '/sink/topology'],
    ['version', '/sink/version'],
    ['schema', '/sink/schema'],
    ['viewSchema', '/sink/viewSchema'],
    ['ownerRole', '/sink/ownerRole'],
    ['sinkRole', '/sink/sinkRole'],
  ]
  for (const [key, field] of fields) {
    for (const name of hostile) assertRejected({ ...base, [key]: name }, field, `${key}=${JSON.stringify(name)}`)
  }
})

test('identifiers: past 63 bytes is rejected, never truncated — also when only the derived table name is too long', () => {
  assert.equal(checkIdentifier('/f', 'a'.repeat(63)), 'a'.repeat(63))
  assert.throws(() => checkIdentifier('/f', 'a'.repeat(64)), /64 bytes/)
  // 'é' is 2 bytes in UTF-8: 32 of them are 64 bytes even though the string has 32 characters.
  assert.throws(() => checkIdentifier('/f', 'é'.repeat(32)), /64 bytes/)
  // A 55-character topology is a fine name, but chunks_<topology>_v1 would be 65 bytes.
  assertRejected({ ...base, topology: 't'.repeat(55) }, '/sink/topology', 'derived table name')
  assert.throws(() => resolveSinkConfig({ ...base, topology: 't'.repeat(55) }), /chunks_t+_v1.*65 bytes/)
})

test('identifiers: accepted names are always quoted', () => {
  const config = resolveSinkConfig({ ...base, topology: 'support-desk', version: 'v2' })
  assert.equal(config.names.chunkTable, '"ragstream"."chunks_support-desk_v2"')
  assert.equal(config.names.view, '"rag"."support-desk"')
  assert.equal(quoteIdent('a"b'), '"a""b"')
})

test('config: other problems are listed together with their paths', () => {
  assert.throws(
    () => resolveSinkConfig({ ...base, dims: 0, hnsw: { m: 1, efConstruction: 2 }, distance: 'dot' as never }),
    (error: Error & { problems?: { path: string }[] }) => {
      assert.deepEqual(
        error.problems!.map((p) => p.path),
        ['/sink/dims', '/sink/distance', '/sink/hnsw/m', '/sink/hnsw/efConstruction'],
      )
      return true
    },
  )
})
