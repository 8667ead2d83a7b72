import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createChunker, validateChunkerConfig, type ChunkerConfig } from '../../src/chunking/chunker.ts'
import { chunkFingerprint, chunkId, contentHash } from '../../src/chunking/chunk-id.ts'
import { ConfigError } from '../../src/errors.ts'

const input = { topology: 'support', entityType: 'ticket', entityKey: '42', fields: { subject: 'Refund' } }

test('chunk ids are stable, 32 hex chars, and depend on topology, entity type, key and index', () => {
  const id = chunkId('support', 'ticket', '42', 0)
  assert.match(id, /^[0-9a-f]{32}$/)
  assert.equal(chunkId('support', 'ticket', '42', 0), id)
  const others = [
    chunkId('support2', 'ticket', '42', 0),
    chunkId('support', 'article', '42', 0),
    chunkId('support', 'ticket', '43', 0),
    chunkId('support', 'ticket', '42', 1),
  ]
  assert.equal(new Set([id, ...others]).size, 5)
  assert.ok(!id.includes('42'))
})

test('content hash is sha256 hex of the formatted text; fingerprints ignore key order', () => {
  assert.equal(contentHash('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  assert.equal(chunkFingerprint('h', { a: 1, b: 2 }), chunkFingerprint('h', { b: 2, a: 1 }))
  assert.notEqual(chunkFingerprint('h', { a: 1 }), chunkFingerprint('h', { a: 2 }))
})

test('the chunker converts markup, splits, formats and identifies each chunk', () => {
  const chunker = createChunker({
    strategy: { kind: 'recursive', size: 30, overlap: 0 },
    markup: 'html',
    template: '{subject}: {text}',
  })
  const chunks = chunker.chunk({ ...input, text: '<p>First paragraph here.</p><p>Second paragraph here.</p>' })
  assert.deepEqual(
    chunks.map((c) => c.text),
    ['Refund: First paragraph here.', 'Refund: Second paragraph here.'],
  )
  assert.deepEqual(
    chunks.map((c) => c.index),
    [0, 1],
  )
  assert.equal(chunks[1].id, chunkId('support', 'ticket', '42', 1))
  assert.equal(chunks[1].contentHash, contentHash('Refund: Second paragraph here.'))
  assert.match(chunker.id, /^recursive\(size=30,overlap=0,unit=chars\)\+html\+template:[0-9a-f]{8}$/)
})

test('strategies are pluggable: whole, or any object with id and split()', () => {
  assert.equal(
    createChunker({ strategy: { kind: 'whole' } }).chunk({ ...input, text: ' all of it ' })[0].text,
    'all of it',
  )
  const lines = createChunker({ strategy: { id: 'lines', split: (t) => t.split('\n') } })
  assert.deepEqual(
    lines.chunk({ ...input, text: 'a\nb' }).map((c) => c.text),
    ['a', 'b'],
  )
  assert.equal(lines.id, 'lines')
})

test('config validation lists every problem with its path', () => {
  const bad = {
    strategy: { kind: 'recursive', size: 0, overlap: -1, unit: 'words' },
    markup: 'rtf',
    template: '{title}',
  } as unknown as ChunkerConfig
  assert.deepEqual(
    validateChunkerConfig(bad, '/topology/nodes/chunk').map((p) => p.path),
    [
      '/topology/nodes/chunk/strategy/unit',
      '/topology/nodes/chunk/strategy/size',
      '/topology/nodes/chunk/strategy/overlap',
      '/topology/nodes/chunk/markup',
      '/topology/nodes/chunk/template',
    ],
  )
  assert.throws(
    () => createChunker({ strategy: { kind: 'recursive', size: 10, overlap: 10 } }),
    (e: unknown) => e instanceof ConfigError && /overlap: must be smaller than size \(10\)/.test(e.message),
  )
  assert.throws(
    () => createChunker({ strategy: { kind: 'sentences' } } as unknown as ChunkerConfig),
    /unknown strategy "sentences"/,
  )
})
