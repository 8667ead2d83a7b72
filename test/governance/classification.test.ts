import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Problem } from '../../src/errors.ts'
import { ClassificationScale } from '../../src/governance/classification.ts'

test('the default scale orders public < internal < confidential < restricted', () => {
  const scale = ClassificationScale.default
  assert.deepEqual(scale.labels, ['public', 'internal', 'confidential', 'restricted'])
  assert.ok(scale.compare('public', 'internal') < 0)
  assert.ok(scale.compare('restricted', 'confidential') > 0)
  assert.equal(scale.compare('internal', 'internal'), 0)
  assert.equal(scale.max('confidential', 'internal'), 'confidential')
  assert.equal(scale.highest, 'restricted')
  assert.equal(scale.allows('confidential', 'internal'), true)
  assert.equal(scale.allows('confidential', 'confidential'), true)
  assert.equal(scale.allows('confidential', 'restricted'), false)
  assert.equal(scale.allows('confidential', 'secret'), false, 'unknown labels are never allowed')
  assert.equal(scale.rank('secret'), -1)
})

test('a configured scale keeps its order', () => {
  const problems: Problem[] = []
  const scale = ClassificationScale.of(['open', 'team', 'hr-only'], '/policy/labels', problems)
  assert.deepEqual(problems, [])
  assert.ok(scale !== undefined)
  assert.equal(scale.allows('team', 'open'), true)
  assert.equal(scale.allows('team', 'hr-only'), false)
  assert.equal(scale.highest, 'hr-only')
})

test('invalid scales are reported with paths', () => {
  const problems: Problem[] = []
  assert.equal(ClassificationScale.of(['public', 'Public', 'public'], '/policy/labels', problems), undefined)
  assert.deepEqual(
    problems.map((p) => p.path),
    ['/policy/labels/1', '/policy/labels/2'],
  )
  const empty: Problem[] = []
  ClassificationScale.of([], '/policy/labels', empty)
  assert.deepEqual(
    empty.map((p) => p.path),
    ['/policy/labels'],
  )
})
