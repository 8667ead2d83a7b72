import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ChunkSetStore, decodeChunkSet, diffChunkSet, encodeChunkSet } from '../../src/chunking/chunk-set.ts'
import { createChunker, type Chunk } from '../../src/chunking/chunker.ts'
import { chunkFingerprint } from '../../src/chunking/chunk-id.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'

// Ten paragraphs of ~300 characters with a 400-character limit: one chunk per paragraph.
const paragraph = (i: number, edit = ''): string =>
  `Section ${i}. ` +
  `Customers on plan ${i} can export invoices from the billing page; exports run nightly and arrive by e-mail. ${edit}`
    .repeat(3)
    .trim()
const doc = (edits: Record<number, string> = {}, count = 10): string =>
  Array.from({ length: count }, (_, i) => paragraph(i, edits[i])).join('\n\n')

const chunker = createChunker({ strategy: { kind: 'recursive', size: 400, overlap: 50 }, template: '{title}\n{text}' })
const metadata = { title: 'Billing FAQ', tenant: 't1' }

type Fingerprinted = Chunk & { fingerprint: string }
function chunks(text: string, meta: Record<string, unknown> = metadata): Fingerprinted[] {
  return chunker
    .chunk({ topology: 'support', entityType: 'article', entityKey: 'kb-17', text, fields: meta })
    .map((c) => ({ ...c, fingerprint: chunkFingerprint(c.contentHash, meta) }))
}

function setup() {
  const state = new MemoryStateStore('chunks')
  const store = new ChunkSetStore(state)
  const apply = async (text: string, meta?: Record<string, unknown>) => {
    await state.prefetch(0, [ChunkSetStore.keyOf('article', 'kb-17')])
    const result = store.update(0, 'article', 'kb-17', chunks(text, meta))
    return {
      upserts: result.upserts.map((c) => c.index),
      tombstones: result.tombstones,
      changelog: state.drainChangelog(),
    }
  }
  return { state, store, apply }
}

test('the 10-paragraph document chunks into 10 chunks', () => {
  assert.equal(chunks(doc()).length, 10)
})

test('first version of an entity: every chunk is an upsert', async () => {
  const { apply } = setup()
  const first = await apply(doc())
  assert.deepEqual(first.upserts, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  assert.deepEqual(first.tombstones, [])
  assert.equal(first.changelog.length, 1)
})

test('editing one paragraph re-emits only the changed chunk', async () => {
  const { apply } = setup()
  await apply(doc())
  const edited = await apply(doc({ 4: 'Refunds too.' }))
  assert.deepEqual(edited.upserts, [4])
  assert.deepEqual(edited.tombstones, [])
})

test('re-sending an identical row emits nothing and writes no changelog record', async () => {
  const { apply } = setup()
  await apply(doc())
  const again = await apply(doc())
  assert.deepEqual(again, { upserts: [], tombstones: [], changelog: [] })
})

test('a metadata change with the same text re-emits every chunk (the fingerprint covers metadata)', async () => {
  const { apply } = setup()
  await apply(doc())
  assert.equal((await apply(doc(), { ...metadata, tenant: 't2' })).upserts.length, 10)
})

test('shrinking the document: upserts for changed chunks, tombstones for vanished ones', async () => {
  const { apply } = setup()
  await apply(doc())
  const ids = chunks(doc()).map((c) => c.id)
  const shrunk = await apply(doc({ 5: 'Last one.' }, 6))
  assert.deepEqual(shrunk.upserts, [5])
  assert.deepEqual(shrunk.tombstones, ids.slice(6))
})

test('deleting the entity tombstones all its chunks; deleting it again (the tombstone after a delete) yields nothing', async () => {
  const { state, store, apply } = setup()
  await apply(doc())
  const ids = chunks(doc()).map((c) => c.id)
  assert.deepEqual(store.remove(0, 'article', 'kb-17'), ids)
  assert.deepEqual(state.drainChangelog(), [{ store: 'chunks', partition: 0, key: 'article:kb-17', value: null }])
  assert.deepEqual(store.remove(0, 'article', 'kb-17'), [])
  assert.deepEqual(state.drainChangelog(), [])
})

test('an entity whose text becomes empty tombstones everything and is forgotten', async () => {
  const { store, apply } = setup()
  await apply(doc())
  const emptied = await apply('')
  assert.equal(emptied.tombstones.length, 10)
  assert.equal(store.get(0, 'article', 'kb-17'), undefined)
})

test('the chunk set survives a commit and is what the next batch diffs against; an abort discards it', async () => {
  const { state, store, apply } = setup()
  await apply(doc())
  await state.flush(new Map([[0, 1n]]))
  await apply(doc({ 1: 'x' }))
  state.discard()
  assert.deepEqual((await apply(doc({ 1: 'x' }))).upserts, [1])
  assert.equal(store.get(0, 'article', 'kb-17')?.length, 10)
})

test('diffChunkSet is pure and ordered: upserts in input order, tombstones in previous order', () => {
  const prev = [
    { id: 'a', fingerprint: '1' },
    { id: 'b', fingerprint: '2' },
    { id: 'c', fingerprint: '3' },
  ]
  const next = [
    { id: 'c', fingerprint: '3' },
    { id: 'd', fingerprint: '4' },
    { id: 'a', fingerprint: '9' },
  ]
  assert.deepEqual(diffChunkSet(prev, next), { upserts: [next[1], next[2]], tombstones: ['b'] })
  assert.deepEqual(diffChunkSet(undefined, next).upserts, next)
  assert.deepEqual(decodeChunkSet(encodeChunkSet(prev)), prev)
})
