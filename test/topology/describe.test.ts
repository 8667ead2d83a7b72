import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { describeTopology } from '../../src/topology/describe.ts'

function stagedTopology() {
  const b = new TopologyBuilder({ applicationId: 'rag', deadLetterTopic: 'rag.dlq' })
  b.table<{ body: string }>('docs', { name: 'docs' })
    .stage({
      name: 'chunk',
      kind: 'chunk',
      stores: ['chunk-sets'],
      processor: { process: (items) => items.map(() => []) },
    })
    .to('rag.chunks', { name: 'chunks-out' })
  return b.build()
}

test('stages show their kind and stores; their stores get compacted changelogs', () => {
  assert.equal(
    stagedTopology().describe(),
    `Topology: rag
   Sub-topology: 0
    Source: docs-source (topics: [docs])
      --> docs
    Processor: docs (stores: [docs]) [table: compacted]
      --> chunk
      <-- docs-source
    Processor: chunk (stores: [chunk-sets]) [stage: chunk, async, batched]
      --> chunks-out
      <-- docs
    Sink: chunks-out (topic: rag.chunks)
      <-- chunk
Stores:
    docs (owner: docs, changelog: rag-docs-changelog)
    chunk-sets (owner: chunk, changelog: rag-chunk-sets-changelog)
Topics:
    source: docs (partitions: external)
    changelog: rag-docs-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store docs
    changelog: rag-chunk-sets-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store chunk-sets
    sink: rag.chunks (partitions: external)
    dead-letter: rag.dlq (partitions: as source topics) (cleanup.policy=delete, retention.ms=604800000, segment.ms=86400000) — records that failed, with error and source position headers
`,
  )
})

test('the JSON description is plain data: the logical nodes without their functions, and arrows both ways', () => {
  const description = describeTopology(stagedTopology().graph)
  assert.deepEqual(JSON.parse(JSON.stringify(description)), description)
  assert.deepEqual(description.nodes[1], {
    kind: 'stage',
    name: 'chunk',
    named: true,
    inputs: ['docs'],
    stageKind: 'chunk',
    stores: ['chunk-sets'],
  })
  const [sub] = description.subTopologies
  assert.deepEqual(
    sub.nodes.map((n) => [n.name, n.successors, n.predecessors]),
    [
      ['docs-source', ['docs'], []],
      ['docs', ['chunk'], ['docs-source']],
      ['chunk', ['chunks-out'], ['docs']],
      ['chunks-out', [], ['chunk']],
    ],
  )
})

test('Mermaid shows topics, processors, stores and arrows', () => {
  const mermaid = stagedTopology().describe('mermaid')
  assert.equal(
    mermaid,
    `flowchart LR
  subgraph sub0 ["Sub-topology 0"]
    n0(["Source: docs-source"])
    n1["Processor: docs<br/>table: compacted"]
    n2["Processor: chunk<br/>stage: chunk, async, batched"]
    n3(["Sink: chunks-out"])
  end
  t0[/"source: docs"/]
  t1[/"sink: rag.chunks"/]
  t2[/"dead-letter: rag.dlq"/]
  s0[("store: docs")]
  s1[("store: chunk-sets")]
  t0 --> n0
  n0 --> n1
  n1 --> n2
  n1 -.- s0
  n2 --> n3
  n2 -.- s1
  n3 --> t1
`,
  )
})
