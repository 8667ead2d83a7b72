// The labelled and the clean corpus through a governed topology (test driver): every seeded value is
// redacted before the chunk stage, counted per detector exactly; detections in the clean corpus are
// false positives, counted and bounded; the variant corpus (issue 11) with the joined customer leaks
// nothing.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { chunkEmbedStage } from '../../src/chunking/chunk-embed-stage.ts'
import { createChunker } from '../../src/chunking/chunker.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import type { GovernBatchMetrics, GovernedDocument } from '../../src/operators/govern/index.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { TextView } from '../../src/governance/redact/normalise.ts'
import { containsToken } from '../fixtures/governance/contains-token.ts'
import { piecesOf } from '../fixtures/governance/score.ts'
import { generateVariantCorpus, type Customer } from '../fixtures/governance/variants.ts'
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

test('variant corpus: values in every written shape, and the joined customer name, e-mail and phone, reach no chunk', async () => {
  // Issue 11's labelled variants through govern with `redact.joined`: the customer row rides along
  // as the policy's joined metadata, and nothing of any labelled value may come out in a chunk.
  const tickets = generateVariantCorpus({ seed: 31, perClass: 20 })
  const batches: GovernBatchMetrics[] = []
  const builder = new TopologyBuilder({ applicationId: 'variants' })
  builder
    .table<{ body: string; customer: Customer }>('tickets', { name: 'tickets' })
    .govern({
      name: 'govern',
      policy: {
        name: 'variants',
        version: '1',
        classify: () => 'internal',
        redact: { joined: { 'customer.name': 'name', 'customer.email': 'email', 'customer.phone': 'phone' } },
      },
      document: (t) => ({ text: t.body }),
      joined: (t) => ({ customer: t.customer }),
      audit: { topic: 'audit' },
      observe: (b) => batches.push(b),
    })
    .to('governed')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 3 })
  await driver.pipeBatch(
    tickets.map((t) => ({ topic: 'tickets', key: t.id, value: { body: t.text, customer: t.customer } })),
  )
  const texts = driver.allOutput('governed').map((r) => (r.value as GovernedDocument).text)
  await driver.close()
  assert.equal(texts.length, tickets.length)
  const readable = (s: string): string => new TextView().build(s, false).text.toLowerCase()
  const out = readable(texts.join('\n\n'))
  let background = tickets.map((t) => t.text).join('\n\n')
  for (const t of tickets)
    for (const v of [
      ...t.values.map((x) => x.written),
      t.customer.name,
      ...t.customer.name.split(' '),
      t.customer.email,
    ])
      background = background.split(v).join(' ')
  const base = readable(background)
  const count = (text: string, piece: string): number =>
    text.split(new RegExp(`(?<![a-z0-9])${piece}(?![a-z0-9])`)).length - 1
  const leaked = tickets
    .flatMap((t) => t.values)
    .filter((v) => piecesOf(v.written).some((p) => count(out, p) > count(base, p)))
    .map((v) => `${v.detector}/${v.variant}: ${JSON.stringify(v.written)}`)
  assert.deepEqual(leaked, [])
  assert.ok(batches.reduce((n, b) => n + (b.redactions.joined ?? 0), 0) > 0, 'contextual matches are counted')
})
