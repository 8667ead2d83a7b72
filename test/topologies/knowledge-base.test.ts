// knowledge-base under the test driver: the describe text; one chunk per Markdown section, an edit
// re-emits its section only, a category reclassification reaches every article in it (RECLASSIFIED),
// unpublishing tombstones, an article waits for its category (inner join); PII in an article is
// masked in its chunks and its store, with a REDACTED audit event beside the chunks.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeChange } from '../../src/generator/debezium-envelope.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'
import { describeApp } from '../../src/app/describe.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { withTelemetry, type TelemetryEvent } from '../../src/observability/telemetry.ts'
import app, { knowledgeBase, markdownSections } from '../../topologies/knowledge-base.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { decodeChunkEvents, testRagServices } from '../support/rag-services.ts'
import { uniqueName } from '../support/stack.ts'

test('knowledge-base: describe text is pinned', () => {
  assert.equal(
    describeApp(app),
    `Topology: knowledge-base
   Sub-topology: 0
    Source: articles-source (topics: [kb.articles])
      --> articles
    Processor: articles (stores: [articles]) [table: compacted]
      --> published
      <-- articles-source
    Processor: published (stores: [])
      --> join-categories-subscription-send
      <-- articles
    Processor: join-categories-subscription-send (stores: [])
      --> join-categories-subscription-sink, join-categories
      <-- published
    Sink: join-categories-subscription-sink (topic: knowledge-base-join-categories-subscription-repartition)
      <-- join-categories-subscription-send
    Source: join-categories-response-source (topics: [knowledge-base-join-categories-response-repartition])
      --> join-categories
    Processor: join-categories (stores: [articles]) [fk-join: inner]
      --> govern
      <-- join-categories-subscription-send, join-categories-response-source
    Processor: govern (stores: [govern-subject-index]) [govern: knowledge-base@1, no forget, async, batched]
      --> govern-audit-sink, chunk-embed
      <-- join-categories
    Sink: govern-audit-sink (topic: rag.chunks.knowledge-base)
      <-- govern
    Processor: chunk-embed (stores: [chunk-embed-chunk-sets]) [chunk article (markdown-sections(size=1200)+template:e583a7dd) → diff → embed, async, batched]
      --> chunk-events
      <-- govern
    Sink: chunk-events (topic: rag.chunks.knowledge-base)
      <-- chunk-embed
   Sub-topology: 1
    Source: categories-source (topics: [kb.public.categories])
      --> categories
    Source: categories-reset-source (topics: [knowledge-base-categories-reset-repartition])
      --> categories
    Processor: categories (stores: [categories]) [table: cdc, truncates and snapshots reset it]
      --> categories-reset-sink, categories-audit-sink, join-categories-right-change
      <-- categories-source, categories-reset-source
    Sink: categories-reset-sink (topic: knowledge-base-categories-reset-repartition)
      <-- categories
    Sink: categories-audit-sink (topic: rag.chunks.knowledge-base)
      <-- categories
    Source: join-categories-subscription-source (topics: [knowledge-base-join-categories-subscription-repartition])
      --> join-categories-subscription-receive
    Processor: join-categories-subscription-receive (stores: [join-categories-subscriptions, categories, join-categories-right])
      --> join-categories-response-sink
      <-- join-categories-subscription-source
    Processor: join-categories-right-change (stores: [join-categories-subscriptions])
      --> join-categories-response-sink, join-categories-right-sink
      <-- categories
    Sink: join-categories-right-sink (topic: knowledge-base-join-categories-right-repartition)
      <-- join-categories-right-change
    Source: join-categories-right-source (topics: [knowledge-base-join-categories-right-repartition])
      --> join-categories-right-receive
    Processor: join-categories-right-receive (stores: [join-categories-subscriptions, join-categories-right])
      --> join-categories-response-sink
      <-- join-categories-right-source
    Sink: join-categories-response-sink (topic: knowledge-base-join-categories-response-repartition)
      <-- join-categories-subscription-receive, join-categories-right-change, join-categories-right-receive
Stores:
    articles (owner: articles, changelog: knowledge-base-articles-changelog)
    categories (owner: categories, changelog: knowledge-base-categories-changelog)
    join-categories-subscriptions (owner: join-categories, changelog: knowledge-base-join-categories-subscriptions-changelog)
    join-categories-right (owner: join-categories, changelog: knowledge-base-join-categories-right-changelog)
    govern-subject-index (owner: govern, changelog: knowledge-base-govern-subject-index-changelog)
    chunk-embed-chunk-sets (owner: chunk-embed, changelog: knowledge-base-chunk-embed-chunk-sets-changelog)
Topics:
    source: kb.articles (partitions: external)
    source: kb.public.categories (partitions: external)
    changelog: knowledge-base-articles-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store articles
    changelog: knowledge-base-categories-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store categories
    repartition: knowledge-base-categories-reset-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — truncates and completed snapshots of categories, and the row deletes they cause
    changelog: knowledge-base-join-categories-subscriptions-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-categories-subscriptions
    changelog: knowledge-base-join-categories-right-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-categories-right
    repartition: knowledge-base-join-categories-subscription-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-categories subscriptions, keyed by foreign key
    repartition: knowledge-base-join-categories-response-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-categories responses, keyed by left key
    repartition: knowledge-base-join-categories-right-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-categories right rows not on their key's partition, keyed by right key
    changelog: knowledge-base-govern-subject-index-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store govern-subject-index
    changelog: knowledge-base-chunk-embed-chunk-sets-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store chunk-embed-chunk-sets
    sink: rag.chunks.knowledge-base (partitions: external)
    dead-letter: knowledge-base-dead-letter (partitions: as source topics) (cleanup.policy=delete, retention.ms=604800000, segment.ms=86400000) — records that failed, with error and source position headers
`,
  )
})

const PREFIX = 'kbt'
const ARTICLES = `${PREFIX}.articles`
const CATEGORIES = `${PREFIX}.public.categories`
const categoriesTable = {
  server: PREFIX,
  schema: 'public',
  table: 'categories',
  key: ['id'],
  columns: [
    { name: 'id', type: 'int64', optional: false },
    { name: 'name', type: 'string', optional: false },
    { name: 'classification', type: 'string', optional: false },
  ],
} as const

function category(id: number, name: string, classification: string) {
  const [record] = encodeChange(
    categoriesTable,
    { op: 'r', before: null, after: { id, name, classification } },
    { withSchema: false, tsMs: 1, lsn: 1, txId: 1 },
  )
  return { topic: CATEGORIES, key: record.key, value: record.value }
}

const ARTICLE = [
  '# Exporting invoices',
  'Invoices can be exported as **PDF** or CSV from the billing page.',
  '## From the web app',
  'Open *Billing*, choose a period and press `Export`.',
  '```',
  '# not a heading: inside a code fence',
  '```',
  '## With the API',
  'Call the [export endpoint](https://example.com/api) with your token.',
].join('\n')

const article = (slug: string, body: string, extra: Record<string, unknown> = {}) => ({
  topic: ARTICLES,
  key: slug,
  value: { slug, category_id: 1, title: 'Invoices', body, published: true, ...extra },
})

test('knowledge-base: markdownSections splits at headings outside code fences, as plain text', () => {
  assert.deepEqual(markdownSections(1200).split(ARTICLE), [
    'Exporting invoices\n\nInvoices can be exported as PDF or CSV from the billing page.',
    'From the web app\n\nOpen Billing, choose a period and press Export.\n# not a heading: inside a code fence',
    'With the API\n\nCall the export endpoint with your token.',
  ])
  assert.ok(
    markdownSections(40)
      .split(ARTICLE)
      .every((chunk) => chunk.length <= 40),
  )
})

test('knowledge-base: one chunk per section; an edit re-emits its section; a reclassified category reaches every article; unpublishing tombstones', async (t) => {
  const chunkTopic = uniqueName('rag.chunks.kb-test')
  const services = await testRagServices(t, chunkTopic)
  t.after(() => deleteSubject(`${chunkTopic}-audit-value`))
  const driver = new TopologyTestDriver(knowledgeBase({ prefix: PREFIX, chunkTopic, services }), {
    partitions: 2,
    services,
  })
  t.after(() => driver.close())
  // The chunk topic carries the chunk events and, beside them, the audit events (keyed by event id).
  let audits: { kind: string; topology: string; topology_version: string }[] = []
  const read = async () => {
    const records = driver.readOutput(chunkTopic)
    const values = (await decodeChunkEvents(records.map((r) => r.rawValue))) as unknown[]
    const isAudit = (v: unknown): boolean => typeof v === 'object' && v !== null && 'event_id' in v && 'kind' in v
    audits = values.filter(isAudit) as typeof audits
    return records.flatMap((r, i) =>
      isAudit(values[i]) ? [] : [{ key: r.key as string, event: values[i] as ChunkEvent | null }],
    )
  }

  await driver.pipe(ARTICLES, ...args(article('export-invoices', ARTICLE)))
  assert.deepEqual(await read(), [], 'inner join: no category yet, nothing indexed')
  await driver.pipeBatch([category(1, 'Billing', 'public'), article('draft', ARTICLE, { published: false })])
  const first = await read()
  assert.deepEqual(
    first.map((r) => [r.event?.entity_key, r.event?.chunk_index]),
    [
      ['export-invoices', 0],
      ['export-invoices', 1],
      ['export-invoices', 2],
    ],
  )
  assert.equal(first[2].event?.text, 'Invoices (Billing)\n\nWith the API\n\nCall the export endpoint with your token.')
  assert.equal(first[0].event?.classification, 'public')
  assert.equal(first[0].event?.policy_version, 'knowledge-base@1')
  assert.equal(audits.length, 0, 'nothing redacted, nothing reclassified')

  await driver.pipe(ARTICLES, ...args(article('export-invoices', ARTICLE.replace('your token', 'an API key'))))
  assert.deepEqual(
    (await read()).map((r) => r.key),
    [first[2].key],
  )

  await driver.pipe(ARTICLES, ...args(article('refunds', '# Refunds\nRefunds take five days.')))
  await read()
  await driver.pipeBatch([category(1, 'Billing', 'internal')])
  const reclassified = await read()
  assert.deepEqual(reclassified.map((r) => r.event?.entity_key).sort(), [
    'export-invoices',
    'export-invoices',
    'export-invoices',
    'refunds',
  ])
  for (const r of reclassified) assert.equal(r.event?.classification, 'internal')
  assert.deepEqual(
    audits.map((a) => [a.kind, a.topology, a.topology_version]),
    [
      ['RECLASSIFIED', 'knowledge-base', 'v1'],
      ['RECLASSIFIED', 'knowledge-base', 'v1'],
    ],
  )

  await driver.pipe(ARTICLES, ...args(article('export-invoices', ARTICLE, { published: false })))
  const unpublished = await read()
  assert.deepEqual(
    unpublished.map((r) => [r.key, r.event]),
    first.map((r) => [r.key, null]),
  )
  assert.deepEqual(driver.readDeadLetters(), [])
})

function args(record: { key: string; value: unknown }): [string, unknown] {
  return [record.key, record.value]
}

test('knowledge-base: PII in an article is masked before its store and in its chunks, and counted per detector', async (t) => {
  const chunkTopic = uniqueName('rag.chunks.kb-pii')
  const services = await testRagServices(t, chunkTopic)
  t.after(() => deleteSubject(`${chunkTopic}-audit-value`))
  const driver = new TopologyTestDriver(knowledgeBase({ prefix: PREFIX, chunkTopic, services }), {
    partitions: 2,
    services,
  })
  t.after(() => driver.close())
  const body =
    '# Contact\nWrite to jane.doe@example.com or call +44 20 7946 0958.\n## Keys\nNever paste a key like AKIAIOSFODNN7EXAMPLE into a ticket.'
  const events: TelemetryEvent[] = []
  await withTelemetry(
    (e) => events.push(e),
    () =>
      driver.pipeBatch([
        category(1, 'Billing', 'unheard-of'),
        article('contact', body, { title: 'Reach jane.doe@example.com' }),
      ]),
  )
  // redactAtSource masked the article before its store, so govern found nothing left to remove.
  assert.deepEqual(
    events.filter((e) => e.kind === 'source-redactions'),
    [{ kind: 'source-redactions', topic: ARTICLES, redactions: { email: 2, phone: 1, secret: 1 } }],
  )
  assert.deepEqual(
    events.filter((e) => e.kind === 'govern').map((e) => e.kind === 'govern' && [e.emitted, e.redactions]),
    [[1, {}]],
  )

  const records = driver.readOutput(chunkTopic)
  const values = (await decodeChunkEvents(records.map((r) => r.rawValue))) as unknown as Record<string, unknown>[]
  const chunks = values.filter((v) => !('event_id' in v)) as unknown as ChunkEvent[]
  const audits = values.filter((v) => 'event_id' in v)
  assert.equal(chunks.length, 2)
  for (const chunk of chunks) {
    assert.doesNotMatch(JSON.stringify(chunk), /jane\.doe|7946|AKIAIOSFODNN7EXAMPLE/)
    assert.equal(chunk.classification, 'restricted', 'an unknown category label fails closed')
  }
  assert.equal(chunks[0].text, 'Reach [EMAIL] (Billing)\n\nContact\n\nWrite to [EMAIL] or call [PHONE].')
  assert.deepEqual(
    audits,
    [],
    "no REDACTED event: govern removed nothing (the counts are the metrics' and the source's)",
  )
  for (const record of driver.allOutput('knowledge-base-articles-changelog'))
    assert.doesNotMatch(record.rawValue?.toString('utf8') ?? '', /jane\.doe|7946|AKIA/)
  assert.deepEqual(driver.readDeadLetters(), [])
})
