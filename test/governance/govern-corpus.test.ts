// The labelled and the clean corpus through a governed topology (test driver): every seeded value is
// redacted before the chunk stage, counted per detector exactly; detections in the clean corpus are
// false positives, counted and bounded.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { chunkEmbedStage } from '../../src/chunking/chunk-embed-stage.ts'
import { createChunker } from '../../src/chunking/chunker.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import type { GovernBatchMetrics, GovernedDocument } from '../../src/operators/govern/index.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { containsToken } from '../fixtures/governance/contains-token.ts'
import {
  CORPUS_KINDS,
  generateCleanCorpus,
  generateLabelledCorpus,
  type Ticket,
} from '../fixtures/governance/corpus.ts'

async function run(tickets: readonly Ticket[]) {
  const batches: GovernBatchMetrics[] = []
  const builder = new TopologyBuilder({ applicationId: 'corpus' })
  builder
    .table<{ body: string }>('tickets', { name: 'tickets' })
    .govern({
      name: 'govern',
      policy: { name: 'corpus', version: '1', classify: () => 'internal', subjects: (r) => [`ticket:${r.key}`] },
      document: (t) => ({ text: t.body }),
      forget: { deletionsTopic: 'deletions' },
      audit: { topic: 'audit' },
      observe: (b) => batches.push(b),
    })
    .stage({
      name: 'chunk',
      kind: 'chunk+embed',
      stores: ['chunk-sets'],
      processor: chunkEmbedStage<GovernedDocument>({
        topology: 'corpus',
        version: 'v1',
        entityType: 'ticket',
        store: 'chunk-sets',
        chunker: createChunker({ strategy: { kind: 'recursive', size: 400, overlap: 0 } }),
        embedder: new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 8 })),
        text: (d) => d.text,
      }),
    })
    .to('chunks')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 3 })
  await driver.pipeBatch(tickets.map((t) => ({ topic: 'tickets', key: t.id, value: { body: t.text } })))
  const redactions: Record<string, number> = {}
  for (const b of batches) for (const [k, n] of Object.entries(b.redactions)) redactions[k] = (redactions[k] ?? 0) + n
  const chunks = driver
    .allOutput('chunks')
    .map((r) => r.rawValue?.toString('utf8') ?? '')
    .join('\n')
  const audits = driver.allOutput('audit').map((r) => r.value as { kind: string; counts: Record<string, number> })
  await driver.close()
  return { redactions, chunks, audits, emitted: batches.reduce((n, b) => n + b.emitted, 0) }
}

test('labelled corpus: 0 seeded values reach the chunk topic; redaction counts per detector equal the seeded numbers (metrics and REDACTED audits)', async () => {
  const corpus = generateLabelledCorpus({ seed: 42 })
  const { redactions, chunks, audits, emitted } = await run(corpus.tickets)
  assert.equal(emitted, corpus.tickets.length)
  const leaked = corpus.tickets.flatMap((t) => t.seeded).filter((s) => containsToken(chunks, s.value))
  assert.deepEqual(leaked, [])
  for (const kind of CORPUS_KINDS) assert.equal(redactions[kind] ?? 0, corpus.counts[kind], kind)
  const audited: Record<string, number> = {}
  for (const a of audits.filter((a) => a.kind === 'REDACTED'))
    for (const [k, n] of Object.entries(a.counts)) audited[k] = (audited[k] ?? 0) + n
  assert.deepEqual(audited, redactions)
  assert.doesNotMatch(JSON.stringify(audits), /@/)
})

test('clean corpus: detections are false positives, counted and reported', async (t) => {
  const clean = generateCleanCorpus({ seed: 7, tickets: 500 })
  const { redactions } = await run(clean)
  const falsePositives = Object.values(redactions).reduce((a, b) => a + b, 0)
  t.diagnostic(`false positives on 500 clean tickets: ${falsePositives} ${JSON.stringify(redactions)}`)
  assert.ok(falsePositives <= 5, `${falsePositives} false positives`)
})
