import { test } from 'node:test'
import assert from 'node:assert/strict'
import { recursiveSplit } from '../../src/chunking/recursive-split.ts'
import { approxTokens } from '../../src/chunking/size.ts'

const sentence = (i: number) => `Sentence number ${i} talks about invoices and refunds.`

test('text under the limit is one chunk', () => {
  assert.deepEqual(recursiveSplit('  Short text.  ', { size: 100, overlap: 0, unit: 'chars' }), ['Short text.'])
  assert.deepEqual(recursiveSplit('   ', { size: 100, overlap: 0, unit: 'chars' }), [])
})

test('paragraphs are packed up to the limit and never cut when they fit', () => {
  const paras = ['A'.repeat(40), 'B'.repeat(40), 'C'.repeat(40), 'D'.repeat(40)]
  const chunks = recursiveSplit(paras.join('\n\n'), { size: 90, overlap: 0, unit: 'chars' })
  assert.deepEqual(chunks, [`${paras[0]}\n\n${paras[1]}`, `${paras[2]}\n\n${paras[3]}`])
})

test('a long paragraph falls back to sentences, with overlap between consecutive chunks', () => {
  const text = Array.from({ length: 12 }, (_, i) => sentence(i)).join(' ')
  const chunks = recursiveSplit(text, { size: 200, overlap: 60, unit: 'chars' })
  assert.ok(chunks.length > 3)
  for (const c of chunks) assert.ok(c.length <= 200, `chunk of ${c.length} chars`)
  for (let i = 1; i < chunks.length; i++) {
    const lastSentenceOfPrevious = chunks[i - 1].split(/(?<=\.)\s/).at(-1) as string
    assert.ok(chunks[i].startsWith(lastSentenceOfPrevious), `chunk ${i} starts with the tail of chunk ${i - 1}`)
  }
  // Every sentence appears, in order.
  const joined = chunks.join(' ')
  for (let i = 0; i < 12; i++) assert.ok(joined.includes(sentence(i)))
})

test('words, then characters, when nothing coarser fits', () => {
  const words = recursiveSplit('alpha beta gamma delta epsilon', { size: 12, overlap: 0, unit: 'chars' })
  assert.deepEqual(words, ['alpha beta', 'gamma delta', 'epsilon'])
  const hard = recursiveSplit('x'.repeat(25), { size: 10, overlap: 0, unit: 'chars' })
  assert.deepEqual(
    hard.map((c) => c.length),
    [10, 10, 5],
  )
})

test('sizes in approximate tokens', () => {
  const text = Array.from({ length: 40 }, (_, i) => sentence(i)).join(' ')
  const chunks = recursiveSplit(text, { size: 50, overlap: 10, unit: 'tokens' })
  assert.ok(chunks.length > 5)
  for (const c of chunks) assert.ok(approxTokens(c) <= 50, `${approxTokens(c)} tokens`)
})

test('Windows line ends still split on paragraphs', () => {
  const chunks = recursiveSplit(`${'A'.repeat(40)}\r\n\r\n${'B'.repeat(40)}`, { size: 50, overlap: 0, unit: 'chars' })
  assert.deepEqual(chunks, ['A'.repeat(40), 'B'.repeat(40)])
})
