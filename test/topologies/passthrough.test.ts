import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import topology from '../../topologies/passthrough.ts'

test('passthrough: describe text is pinned', () => {
  assert.equal(
    topology.describe(),
    `Topology: passthrough
   Sub-topology: 0
    Source: input-source (topics: [passthrough.input])
      --> input
    Processor: input (stores: [input]) [table: compacted]
      --> KTABLE-SINK-0000000001
      <-- input-source
    Sink: KTABLE-SINK-0000000001 (topic: passthrough.output)
      <-- input
Stores:
    input (owner: input, changelog: passthrough-input-changelog)
Topics:
    source: passthrough.input (partitions: external)
    changelog: passthrough-input-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store input
    sink: passthrough.output (partitions: external)
    dead-letter: passthrough-dead-letter (partitions: as source topics) (cleanup.policy=delete, retention.ms=604800000, segment.ms=86400000) — records that failed, with error and source position headers
`,
  )
})

test('passthrough: rows and deletes pass through unchanged', async () => {
  const driver = new TopologyTestDriver(topology, { partitions: 2 })
  await driver.pipe('passthrough.input', 'a', { n: 1 })
  await driver.pipe('passthrough.input', 'b', { n: 2 })
  await driver.pipe('passthrough.input', 'a', null)
  assert.deepEqual(
    driver.readOutput('passthrough.output').map((r) => [r.key, r.value]),
    [
      ['a', { n: 1 }],
      ['b', { n: 2 }],
      ['a', null],
    ],
  )
})
