import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'

function driverFor(): TopologyTestDriver {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table<{ open: boolean }>('in', { name: 'rows' })
    .filter((row) => row.open)
    .to('out')
  return new TopologyTestDriver(b.build(), { partitions: 2 })
}

test('a row that stops matching becomes a tombstone; one that never matched produces nothing', async () => {
  const driver = driverFor()
  await driver.pipe('in', 'a', { open: true })
  await driver.pipe('in', 'b', { open: false })
  await driver.pipe('in', 'b', { open: false })
  await driver.pipe('in', 'a', { open: false })
  await driver.pipe('in', 'b', null)
  assert.deepEqual(
    driver.readOutput('out').map((r) => [r.key, r.value]),
    [
      ['a', { open: true }],
      ['a', null],
    ],
  )
})

test('a delete of a matching row is a tombstone', async () => {
  const driver = driverFor()
  await driver.pipe('in', 'a', { open: true })
  await driver.pipe('in', 'a', null)
  assert.deepEqual(
    driver.readOutput('out').map((r) => r.value),
    [{ open: true }, null],
  )
})

test('after a stage (old value unknown) a non-matching row is forwarded as a tombstone', async () => {
  const b = new TopologyBuilder({ applicationId: 'app' })
  b.table<{ open: boolean }>('in', { name: 'rows' })
    .stage<{ open: boolean }>({
      kind: 'identity',
      processor: { process: (items) => items.map((i) => [{ key: i.key, value: i.value }]) },
    })
    .filter((row) => row.open)
    .to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipe('in', 'a', { open: false })
  assert.deepEqual(
    driver.readOutput('out').map((r) => [r.key, r.value]),
    [['a', null]],
  )
})
