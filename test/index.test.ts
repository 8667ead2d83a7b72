// The package entry point loads and exposes the DSL and the test driver users start from.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as ragstream from '../src/index.ts'

test('the public API exports the DSL, the test driver and the errors', () => {
  for (const name of [
    'TopologyBuilder',
    'TopologyTestDriver',
    'DebeziumDecoder',
    'createChunker',
    'Embedder',
    'RagstreamError',
    'definePolicy',
  ]) {
    assert.equal(typeof (ragstream as Record<string, unknown>)[name], 'function', name)
  }
})
