import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compileTemplate, parseTemplate } from '../../src/chunking/template.ts'

test('a template prepends context from fields, nested paths included', () => {
  const format = compileTemplate('{title} ({customer.tier})\n{{ref}}\n{text}')
  assert.equal(format('Body.', { title: 'Refunds', customer: { tier: 'gold' } }), 'Refunds (gold)\n{ref}\nBody.')
  assert.equal(format('Body.', {}), ' ()\n{ref}\nBody.')
  assert.equal(compileTemplate('{text}')('same', {}), 'same')
  assert.equal(compileTemplate('{n} {o} {text}')('t', { n: 3, o: { a: 1 } }), '3 {"a":1} t')
})

test('template problems are listed, and {text} is required', () => {
  assert.deepEqual(parseTemplate('{title}').problems, [
    'the template must contain {text}, or the chunk itself would be lost',
  ])
  assert.equal(parseTemplate('{text} {bad name} }').problems.length, 2)
  assert.throws(() => compileTemplate('{title'), /invalid chunk template/)
})
