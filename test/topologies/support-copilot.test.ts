// support-copilot under the test driver: the describe text, and the chunk-table semantics a data
// engineer relies on — reclassification reaches every derived chunk, a one-paragraph edit re-emits
// one chunk, a delete tombstones all, bad input is dead-lettered while good input flows — and its
// governance: seeded PII never reaches the chunk topic or a store, a customer of an unknown region is
// denied, and forgetting a customer tombstones its chunks and keeps every later change of it out. The
// embedding cache (Redis) and the schemas (registry: chunk events, audit events, deletion requests)
// are the real services.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeChange, type Row } from '../../src/generator/debezium-envelope.ts'
import type { AuditEventValue } from '../../src/governance/audit.ts'
import { buildDeletionRequest } from '../../src/governance/forget/deletion-request.ts'
import { deletionRequestCodec } from '../../src/governance/forget/governance-codecs.ts'
import { supportTables } from '../../src/generator/support-dataset.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'
import { describeApp } from '../../src/app/describe.ts'
import { TopologyTestDriver, type TestInputRecord } from '../../src/testing/index.ts'
import { DEAD_LETTER_HEADERS } from '../../src/topology/compile.ts'
import app, { supportCopilot } from '../../topologies/support-copilot.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { decodeChunkEvents, testRagServices } from '../support/rag-services.ts'
import { endpoints, uniqueName } from '../support/stack.ts'

test('support-copilot: describe text is pinned', () => {
  assert.equal(
    describeApp(app),
    `Topology: support-copilot
   Sub-topology: 0
    Source: tickets-source (topics: [support.public.tickets])
      --> tickets
    Source: tickets-reset-source (topics: [support-copilot-tickets-reset-repartition])
      --> tickets
    Processor: tickets (stores: [tickets]) [table: cdc, truncates and snapshots reset it]
      --> tickets-reset-sink, tickets-audit-sink, join-customers-subscription-send
      <-- tickets-source, tickets-reset-source
    Sink: tickets-reset-sink (topic: support-copilot-tickets-reset-repartition)
      <-- tickets
    Sink: tickets-audit-sink (topic: rag.chunks.support-copilot)
      <-- tickets
    Processor: join-customers-subscription-send (stores: [])
      --> join-customers-subscription-sink, join-customers
      <-- tickets
    Sink: join-customers-subscription-sink (topic: support-copilot-join-customers-subscription-repartition)
      <-- join-customers-subscription-send
    Source: join-customers-response-source (topics: [support-copilot-join-customers-response-repartition])
      --> join-customers
    Processor: join-customers (stores: [tickets, join-customers]) [fk-join: left]
      --> join-products-subscription-send
      <-- join-customers-subscription-send, join-customers-response-source
    Processor: join-products-subscription-send (stores: [])
      --> join-products-subscription-sink, join-products
      <-- join-customers
    Sink: join-products-subscription-sink (topic: support-copilot-join-products-subscription-repartition)
      <-- join-products-subscription-send
    Source: join-products-response-source (topics: [support-copilot-join-products-response-repartition])
      --> join-products
    Processor: join-products (stores: [join-customers]) [fk-join: left]
      --> govern
      <-- join-products-subscription-send, join-products-response-source
    Source: govern-broadcast-source (topics: [support-copilot-govern-deletions-broadcast-repartition])
      --> govern
    Processor: govern (stores: [govern-forgotten-subjects, govern-subject-index, join-customers, tickets, customers, join-customers-subscriptions, join-customers-right, chunk-embed-chunk-sets]) [govern: support-copilot@2, forget FOREVER, async, batched]
      --> govern-audit-sink, chunk-embed
      <-- join-products, govern-broadcast-source
    Sink: govern-audit-sink (topic: rag.chunks.support-copilot)
      <-- govern
    Processor: chunk-embed (stores: [chunk-embed-chunk-sets]) [chunk ticket (recursive(size=600,overlap=0,unit=chars)+template:83b9967e) → diff → embed, async, batched]
      --> chunk-events
      <-- govern
    Sink: chunk-events (topic: rag.chunks.support-copilot)
      <-- chunk-embed
   Sub-topology: 1
    Source: customers-source (topics: [support.public.customers])
      --> customers
    Source: customers-reset-source (topics: [support-copilot-customers-reset-repartition])
      --> customers
    Processor: customers (stores: [customers]) [table: cdc, truncates and snapshots reset it]
      --> customers-reset-sink, customers-audit-sink, join-customers-right-change
      <-- customers-source, customers-reset-source
    Sink: customers-reset-sink (topic: support-copilot-customers-reset-repartition)
      <-- customers
    Sink: customers-audit-sink (topic: rag.chunks.support-copilot)
      <-- customers
    Source: join-customers-subscription-source (topics: [support-copilot-join-customers-subscription-repartition])
      --> join-customers-subscription-receive
    Processor: join-customers-subscription-receive (stores: [join-customers-subscriptions, customers, join-customers-right])
      --> join-customers-response-sink
      <-- join-customers-subscription-source
    Processor: join-customers-right-change (stores: [join-customers-subscriptions])
      --> join-customers-response-sink, join-customers-right-sink
      <-- customers
    Sink: join-customers-right-sink (topic: support-copilot-join-customers-right-repartition)
      <-- join-customers-right-change
    Source: join-customers-right-source (topics: [support-copilot-join-customers-right-repartition])
      --> join-customers-right-receive
    Processor: join-customers-right-receive (stores: [join-customers-subscriptions, join-customers-right])
      --> join-customers-response-sink
      <-- join-customers-right-source
    Sink: join-customers-response-sink (topic: support-copilot-join-customers-response-repartition)
      <-- join-customers-subscription-receive, join-customers-right-change, join-customers-right-receive
   Sub-topology: 2
    Source: products-source (topics: [support.products])
      --> products
    Processor: products (stores: [products]) [table: compacted]
      --> join-products-right-change
      <-- products-source
    Source: join-products-subscription-source (topics: [support-copilot-join-products-subscription-repartition])
      --> join-products-subscription-receive
    Processor: join-products-subscription-receive (stores: [join-products-subscriptions, products, join-products-right])
      --> join-products-response-sink
      <-- join-products-subscription-source
    Processor: join-products-right-change (stores: [join-products-subscriptions])
      --> join-products-response-sink, join-products-right-sink
      <-- products
    Sink: join-products-right-sink (topic: support-copilot-join-products-right-repartition)
      <-- join-products-right-change
    Source: join-products-right-source (topics: [support-copilot-join-products-right-repartition])
      --> join-products-right-receive
    Processor: join-products-right-receive (stores: [join-products-subscriptions, join-products-right])
      --> join-products-response-sink
      <-- join-products-right-source
    Sink: join-products-response-sink (topic: support-copilot-join-products-response-repartition)
      <-- join-products-subscription-receive, join-products-right-change, join-products-right-receive
   Sub-topology: 3
    Source: govern-deletions-source (topics: [governance.deletions])
      --> govern-deletions-broadcast
    Processor: govern-deletions-broadcast (stores: []) [one copy per partition]
      --> govern-broadcast-sink
      <-- govern-deletions-source
    Sink: govern-broadcast-sink (topic: support-copilot-govern-deletions-broadcast-repartition)
      <-- govern-deletions-broadcast
Stores:
    tickets (owner: tickets, changelog: support-copilot-tickets-changelog)
    customers (owner: customers, changelog: support-copilot-customers-changelog)
    products (owner: products, changelog: support-copilot-products-changelog)
    join-customers (owner: join-customers, changelog: support-copilot-join-customers-changelog)
    join-customers-subscriptions (owner: join-customers, changelog: support-copilot-join-customers-subscriptions-changelog)
    join-customers-right (owner: join-customers, changelog: support-copilot-join-customers-right-changelog)
    join-products-subscriptions (owner: join-products, changelog: support-copilot-join-products-subscriptions-changelog)
    join-products-right (owner: join-products, changelog: support-copilot-join-products-right-changelog)
    govern-forgotten-subjects (owner: govern, changelog: support-copilot-govern-forgotten-subjects-changelog)
    govern-subject-index (owner: govern, changelog: support-copilot-govern-subject-index-changelog)
    chunk-embed-chunk-sets (owner: chunk-embed, changelog: support-copilot-chunk-embed-chunk-sets-changelog)
Topics:
    source: support.public.tickets (partitions: external)
    source: support.public.customers (partitions: external)
    source: support.products (partitions: external)
    source: governance.deletions (partitions: external)
    changelog: support-copilot-tickets-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store tickets
    repartition: support-copilot-tickets-reset-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — truncates and completed snapshots of tickets, and the row deletes they cause
    changelog: support-copilot-customers-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store customers
    repartition: support-copilot-customers-reset-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — truncates and completed snapshots of customers, and the row deletes they cause
    changelog: support-copilot-products-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store products
    changelog: support-copilot-join-customers-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-customers (the join result, read by another join)
    changelog: support-copilot-join-customers-subscriptions-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-customers-subscriptions
    changelog: support-copilot-join-customers-right-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-customers-right
    repartition: support-copilot-join-customers-subscription-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-customers subscriptions, keyed by foreign key
    repartition: support-copilot-join-customers-response-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-customers responses, keyed by left key
    repartition: support-copilot-join-customers-right-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-customers right rows not on their key's partition, keyed by right key
    changelog: support-copilot-join-products-subscriptions-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-products-subscriptions
    changelog: support-copilot-join-products-right-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store join-products-right
    repartition: support-copilot-join-products-subscription-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-products subscriptions, keyed by foreign key
    repartition: support-copilot-join-products-response-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-products responses, keyed by left key
    repartition: support-copilot-join-products-right-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — join-products right rows not on their key's partition, keyed by right key
    changelog: support-copilot-govern-forgotten-subjects-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store govern-forgotten-subjects
    changelog: support-copilot-govern-subject-index-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store govern-subject-index
    repartition: support-copilot-govern-deletions-broadcast-repartition (partitions: as source topics) (cleanup.policy=delete, retention.ms=-1) — govern deletion requests, one copy per partition
    changelog: support-copilot-chunk-embed-chunk-sets-changelog (partitions: as source topics) (cleanup.policy=compact) — changelog of store chunk-embed-chunk-sets
    sink: rag.chunks.support-copilot (partitions: external)
    dead-letter: support-copilot-dead-letter (partitions: as source topics) (cleanup.policy=delete, retention.ms=604800000, segment.ms=86400000) — records that failed, with error and source position headers
`,
  )
})

const PREFIX = 'sc'
const tables = supportTables(PREFIX)
const TICKETS = `${PREFIX}.public.tickets`
const CUSTOMERS = `${PREFIX}.public.customers`
const PRODUCTS = `${PREFIX}.products`

function ticket(op: 'c' | 'u' | 'r' | 'd', row: Row, before: Row | null = null): TestInputRecord[] {
  return encodeChange(
    tables.tickets,
    { op, before: op === 'd' ? row : before, after: op === 'd' ? null : row },
    { withSchema: false, tsMs: 1_700_000_000_000, lsn: 1, txId: 1 },
  ).map((r) => ({ topic: TICKETS, key: r.key, value: r.value }))
}

function customer(op: 'c' | 'u' | 'r' | 'd', row: Row): TestInputRecord[] {
  return encodeChange(
    tables.customers,
    { op, before: op === 'd' ? row : null, after: op === 'd' ? null : row },
    { withSchema: true, tsMs: 1_700_000_000_000, lsn: 1, txId: 1 },
  ).map((r) => ({ topic: CUSTOMERS, key: r.key, value: r.value }))
}

const product = (sku: string, name: string): TestInputRecord => ({
  topic: PRODUCTS,
  key: sku,
  value: { sku, name, category: 'billing' },
})

const ada = {
  id: 1,
  name: 'Ada Byron',
  email: null,
  tenant: 'acme',
  tier: 'pro',
  region: 'eu',
  status: 'active',
  classification: 'internal',
  updated_at: 1,
}
const grace = {
  id: 2,
  name: 'Grace Hopper',
  email: null,
  tenant: 'globex',
  tier: 'free',
  region: 'us',
  status: 'active',
  classification: 'public',
  updated_at: 1,
}

/** Paragraphs of ~400 characters: each is one chunk (size 600). */
const paragraph = (i: number, word = 'invoice'): string =>
  `Paragraph ${i}: ` + Array.from({ length: 40 }, (_, k) => `${word}${k}`).join(' ') + '.'
const body = (n: number, edit?: { at: number; word: string }): string =>
  Array.from({ length: n }, (_, i) => paragraph(i, edit?.at === i ? edit.word : 'invoice')).join('\n\n')
const ticketRow = (id: number, customerId: number, text: string): Row => ({
  id,
  customer_id: customerId,
  product_sku: 'SKU-1',
  subject: `Ticket ${id}`,
  body: text,
  status: 'open',
  priority: 2,
  updated_at: 1,
})

const isAudit = (value: unknown): value is AuditEventValue =>
  typeof value === 'object' && value !== null && 'event_id' in value && 'kind' in value

async function setup(t: { after: (fn: () => Promise<void>) => void }) {
  const chunkTopic = uniqueName('rag.chunks.sc-test')
  const deletionsTopic = uniqueName('sc-test.deletions')
  const services = await testRagServices(t, chunkTopic)
  t.after(() => deleteSubject(`${chunkTopic}-audit-value`).then(() => deleteSubject(`${deletionsTopic}-value`)))
  // The real services, in the driver too: the chunk and audit events are the Avro the sink reads.
  const driver = new TopologyTestDriver(supportCopilot({ prefix: PREFIX, chunkTopic, deletionsTopic, services }), {
    partitions: 3,
    services,
  })
  t.after(() => driver.close())
  const audits: AuditEventValue[] = []
  /** The chunk events (null = tombstone) since the last read; audit events on the same topic are kept apart in `audits`. */
  const read = async () => {
    const records = driver.readOutput(chunkTopic)
    const events = await decodeChunkEvents(records.map((r) => r.rawValue))
    const chunks: { key: string; partition: number; event: ChunkEvent | null }[] = []
    records.forEach((r, i) => {
      const event: unknown = events[i]
      if (isAudit(event)) audits.push(event)
      else chunks.push({ key: r.key as string, partition: r.partition, event: event as ChunkEvent | null })
    })
    return chunks
  }
  const codec = deletionRequestCodec({ registryUrl: endpoints.schemaRegistryUrl, topic: deletionsTopic })
  /** What `ragstream forget --subject <subject>` produces: an Avro deletion request keyed by subject. */
  const forget = async (subject: string, requestId: string) => {
    await codec.open()
    const request = buildDeletionRequest({
      subject,
      reason: 'test',
      requestedBy: 'test',
      requestedAtMs: 1_700_000_100_000,
      requestId,
    })
    await driver.pipe(deletionsTopic, subject, codec.encode(request))
  }
  return { driver, read, audits, forget, services, chunkTopic }
}

test('support-copilot: a customer reclassified to restricted re-emits every chunk derived from its tickets, and only those', async (t) => {
  const { driver, read, audits, services } = await setup(t)
  await driver.pipeBatch([product('SKU-1', 'Ledger'), ...customer('r', ada), ...customer('r', grace)])
  await driver.pipeBatch([
    ...ticket('r', ticketRow(10, 1, body(3))),
    ...ticket('r', ticketRow(11, 1, body(2))),
    ...ticket('r', ticketRow(12, 2, body(2))),
  ])
  const first = await read()
  assert.equal(first.length, 7)
  for (const { event } of first) {
    assert.ok(event)
    assert.equal(event.classification, event.entity_key === '12' ? 'public' : 'internal')
    assert.deepEqual(event.subjects, [`customer:${event.entity_key === '12' ? 2 : 1}`])
    assert.equal(event.region, event.entity_key === '12' ? 'us' : 'eu')
    assert.equal(event.tenant, event.entity_key === '12' ? 'globex' : 'acme')
    assert.equal(event.policy_version, 'support-copilot@2')
    assert.match(event.text, /^Ticket \d+\nCustomer tier: (pro|free) \| Product: Ledger\n\nParagraph \d/)
    assert.equal(event.lineage.source_topic, TICKETS)
    assert.equal(event.embedding.length, 384)
  }

  const misses = services.embedder.metrics().cacheMisses
  await driver.pipeBatch(customer('u', { ...ada, classification: 'restricted', updated_at: 2 }))
  const second = await read()
  assert.deepEqual(
    second.map((r) => r.key).sort(),
    first
      .filter((r) => r.event?.entity_key !== '12')
      .map((r) => r.key)
      .sort(),
  )
  for (const { event } of second) assert.equal(event?.classification, 'restricted')
  assert.equal(
    audits.filter((a) => a.kind === 'RECLASSIFIED').length,
    2,
    'one audit event per ticket whose label changed',
  )
  assert.equal(services.embedder.metrics().cacheMisses, misses, 'same texts: the embedding cache answers')
  assert.deepEqual(driver.readDeadLetters(), [])
})

test('support-copilot: editing one paragraph re-emits only its chunk; re-sending the same row emits nothing; a product rename re-emits all', async (t) => {
  const { driver, read, services } = await setup(t)
  await driver.pipeBatch([product('SKU-1', 'Ledger'), ...customer('r', ada), ...ticket('r', ticketRow(20, 1, body(6)))])
  const first = await read()
  assert.deepEqual(
    first.map((r) => r.event?.chunk_index),
    [0, 1, 2, 3, 4, 5],
  )
  assert.equal(new Set(first.map((r) => r.partition)).size, 1, 'one entity, one partition')

  await driver.pipe(TICKETS, ...ticketArgs(ticket('u', ticketRow(20, 1, body(6, { at: 3, word: 'refund' })))))
  const edited = await read()
  assert.deepEqual(
    edited.map((r) => [r.key, r.event?.chunk_index]),
    [[first[3].key, 3]],
  )
  assert.match(edited[0].event?.text ?? '', /refund7/)

  const misses = services.embedder.metrics().cacheMisses
  await driver.pipe(TICKETS, ...ticketArgs(ticket('u', ticketRow(20, 1, body(6, { at: 3, word: 'refund' })))))
  assert.deepEqual(await read(), [])
  assert.equal(services.embedder.metrics().cacheMisses, misses)

  await driver.pipe(PRODUCTS, 'SKU-1', { sku: 'SKU-1', name: 'Ledger Cloud', category: 'billing' })
  const renamed = await read()
  assert.equal(renamed.length, 6)
  for (const { event } of renamed) assert.match(event?.text ?? '', /Product: Ledger Cloud/)
})

function ticketArgs(records: TestInputRecord[]): [string | Buffer | null, unknown] {
  assert.equal(records.length, 1)
  return [records[0].key, records[0].value]
}

test('support-copilot: deleting a ticket tombstones every chunk of it (the Debezium tombstone after is a no-op)', async (t) => {
  const { driver, read, chunkTopic } = await setup(t)
  await driver.pipeBatch([
    product('SKU-1', 'Ledger'),
    ...customer('r', ada),
    ...ticket('r', ticketRow(30, 1, body(4))),
    ...ticket('r', ticketRow(31, 1, body(1))),
  ])
  const created = await read()
  assert.equal(created.length, 5)
  const deleted = ticket('d', ticketRow(30, 1, body(4)))
  assert.equal(deleted.length, 2, 'delete + tombstone')
  await driver.pipeBatch(deleted)
  const tombstones = await read()
  assert.deepEqual(
    tombstones.map((r) => r.key).sort(),
    created
      .filter((r) => r.event?.entity_key === '30')
      .map((r) => r.key)
      .sort(),
  )
  for (const r of tombstones) assert.equal(r.event, null)
  assert.deepEqual(
    [...driver.readTable(chunkTopic).values()].map((v) => (v === null ? null : 'chunk')),
    ['chunk'],
    'only ticket 31 is left',
  )
  assert.deepEqual(driver.readDeadLetters(), [])
})

test('support-copilot: malformed records go to the dead-letter topic with their position; good records in the same batch flow', async (t) => {
  const { driver, read } = await setup(t)
  await driver.pipeBatch([product('SKU-1', 'Ledger'), ...customer('r', ada)])
  await driver.pipeBatch([
    { topic: TICKETS, key: '{"id":40}', value: Buffer.from('{"before":null,"after":{"id":40,"body":"cut') },
    ...ticket('c', ticketRow(41, 1, body(1))),
    { topic: TICKETS, key: '{"id":42}', value: JSON.stringify([1, 2, 3]) },
    { topic: CUSTOMERS, key: '{"id":3}', value: Buffer.from([0xde, 0xad, 0xbe, 0xef]) },
    ...ticket('c', ticketRow(43, 1, body(2))),
  ])
  const out = await read()
  assert.deepEqual([...new Set(out.map((r) => r.event?.entity_key))].sort(), ['41', '43'])
  const dead = driver.readDeadLetters()
  assert.deepEqual(
    dead.map((d) => [d.key, d.headers[DEAD_LETTER_HEADERS.code], d.headers[DEAD_LETTER_HEADERS.topic]]).sort(),
    [
      ['{"id":3}', 'RS_DECODE_FAILED', CUSTOMERS],
      ['{"id":40}', 'RS_DECODE_FAILED', TICKETS],
      ['{"id":42}', 'RS_DECODE_FAILED', TICKETS],
    ],
  )
  for (const d of dead) {
    assert.match(d.headers[DEAD_LETTER_HEADERS.offset], /^\d+$/)
    assert.match(d.headers[DEAD_LETTER_HEADERS.partition], /^\d+$/)
    assert.ok(d.headers[DEAD_LETTER_HEADERS.node])
  }
})

test('support-copilot: seeded PII never reaches the chunk topic or a store; the chunks carry masks instead', async (t) => {
  const { driver, read, audits, chunkTopic } = await setup(t)
  const secret = `ghp_${'aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5'}`
  const seeded = {
    EMAIL: 'anna.kowalska@example.org',
    PHONE: '+44 20 7946 0958',
    CARD: '4111 1111 1111 1111',
    IBAN: 'DE89 3704 0044 0532 0130 00',
    SSN: '536-22-1847',
    IPV4: '203.0.113.42',
    SECRET: secret,
  }
  const text = [
    `Hello, I cannot log in. Write to me at ${seeded.EMAIL} or call ${seeded.PHONE}.`,
    `The card ${seeded.CARD} was charged twice; refund to IBAN ${seeded.IBAN} please. My SSN is ${seeded.SSN}.`,
    `The request came from ${seeded.IPV4} and our integration uses the token ${seeded.SECRET} for the API.`,
  ].join('\n\n')
  await driver.pipeBatch([
    product('SKU-1', 'Ledger'),
    ...customer('r', { ...ada, email: seeded.EMAIL }),
    ...ticket('r', { ...ticketRow(60, 1, text), subject: `Call me on ${seeded.PHONE}` }),
  ])
  const chunks = await read()
  assert.ok(chunks.length > 0)
  const outputs = [...driver.readTable(chunkTopic).values()].map((v) => Buffer.from(v as Buffer))
  for (const [label, value] of Object.entries(seeded)) {
    for (const raw of outputs) assert.ok(!raw.includes(value), `${label} reached the chunk topic`)
    for (const { event } of chunks)
      assert.ok(!JSON.stringify(event?.metadata).includes(value) && !event?.text.includes(value), `${label} in a chunk`)
    for (const name of driver.processor.storeNames) {
      for (let p = 0; p < 3; p++) {
        for (const [, stored] of driver.store(name)!.entries(p))
          assert.ok(!stored.includes(value), `${label} in store ${name}`)
      }
    }
  }
  const all = chunks.map((c) => c.event?.text ?? '').join('\n')
  for (const mask of ['[EMAIL]', '[PHONE]', '[CARD]', '[IBAN]', '[SSN]', '[IPV4]', '[SECRET]'])
    assert.ok(all.includes(mask), `${mask} in the chunk text`)
  assert.match(all, /^Call me on \[PHONE\]\n/, 'the template fields are redacted too')
  // Redacted as the sources are decoded, so govern finds nothing left (no REDACTED event); audit events never hold a value.
  assert.deepEqual(
    audits.filter((a) => a.kind === 'REDACTED'),
    [],
  )
  for (const value of Object.values(seeded)) assert.ok(audits.every((a) => !JSON.stringify(a).includes(value)))
  assert.deepEqual(driver.readDeadLetters(), [])
})

test("support-copilot: the joined customer's name is redacted wherever the ticket repeats it, however it is cased or wrapped", async (t) => {
  const { driver, read } = await setup(t)
  const text =
    'The export stops at 10,000 rows again.\n\nThanks,\nADA  BYRON\n\nP.S. ada\nbyron is also on the invoice.'
  await driver.pipeBatch([product('SKU-1', 'Ledger'), ...customer('r', ada), ...ticket('r', ticketRow(61, 1, text))])
  const all = (await read()).map((c) => c.event?.text ?? '').join('\n')
  assert.ok(!/ada\s+byron/i.test(all), all)
  assert.equal(all.match(/\[NAME\]/g)?.length, 2, all)
  assert.match(all, /export stops at 10,000 rows/, 'the rest of the text is kept')
})

test('support-copilot: a ticket whose customer is missing or in an unknown region is denied (audited), and indexed once the customer is known', async (t) => {
  const { driver, read, audits } = await setup(t)
  await driver.pipeBatch([
    product('SKU-1', 'Ledger'),
    ...customer('r', { ...ada, region: 'mars' }),
    ...ticket('r', ticketRow(70, 1, body(2))),
    ...ticket('r', ticketRow(71, 9, body(1))),
  ])
  assert.deepEqual(await read(), [])
  assert.ok(
    audits.filter((a) => a.kind === 'DENIED').length >= 2,
    JSON.stringify(audits.map((a) => [a.kind, a.reason])),
  )
  await driver.pipeBatch(customer('u', { ...ada, region: 'apac', updated_at: 2 }))
  const indexed = await read()
  assert.deepEqual([...new Set(indexed.map((r) => r.event?.entity_key))], ['70'])
  for (const { event } of indexed) assert.equal(event?.region, 'apac')
})

test('support-copilot: forgetting a customer tombstones every chunk of its tickets, and later changes of that customer produce nothing', async (t) => {
  const { driver, read, audits, forget, services } = await setup(t)
  await driver.pipeBatch([product('SKU-1', 'Ledger'), ...customer('r', ada), ...customer('r', grace)])
  await driver.pipeBatch([
    ...ticket('r', ticketRow(80, 1, body(3))),
    ...ticket('r', ticketRow(81, 1, body(1))),
    ...ticket('r', ticketRow(82, 2, body(2))),
  ])
  const created = await read()
  const adas = created
    .filter((r) => r.event?.entity_key !== '82')
    .map((r) => r.key)
    .sort()
  assert.equal(adas.length, 4)
  const cached = async () =>
    (
      await services.embeddingCache.getMany(
        services.embedder.model,
        created.filter((r) => r.event?.entity_key !== '82').map((r) => r.event!.content_hash),
        384,
      )
    ).filter((v) => v !== undefined).length
  assert.equal(await cached(), 4, "the chunks' vectors are cached")

  await forget('customer:1', 'req-sc-1')
  const forgotten = await read()
  assert.deepEqual(forgotten.map((r) => r.key).sort(), adas, "exactly the customer's chunks")
  for (const r of forgotten) assert.equal(r.event, null)
  const applied = audits.filter((a) => a.kind === 'DELETION_APPLIED' && a.request_id === 'req-sc-1')
  assert.equal(applied.length, 3, 'one DELETION_APPLIED per partition')
  assert.equal(
    applied.reduce((n, a) => n + (a.counts.chunks_tombstoned ?? 0), 0),
    4,
  )
  assert.equal(await cached(), 0, 'their cached vectors are deleted')
  const ticketKeys = [0, 1, 2].flatMap((p) => [...(driver.store('tickets')?.entries(p).keys() ?? [])])
  assert.ok(
    ticketKeys.some((k) => k.includes('82')) && !ticketKeys.some((k) => k.includes('80') || k.includes('81')),
    `the forgotten tickets left the tickets store: ${ticketKeys}`,
  )

  // Later changes of the forgotten customer and its tickets, and a new ticket of it: nothing comes back.
  await driver.pipeBatch([
    ...customer('u', { ...ada, classification: 'confidential', updated_at: 3 }),
    ...ticket('u', ticketRow(80, 1, body(3, { at: 1, word: 'again' }))),
    ...ticket('c', ticketRow(83, 1, body(1))),
  ])
  assert.deepEqual(await read(), [])
  // Other customers are untouched and keep flowing.
  await driver.pipe(TICKETS, ...ticketArgs(ticket('u', ticketRow(82, 2, body(2, { at: 0, word: 'still' })))))
  assert.deepEqual(
    (await read()).map((r) => [r.event?.entity_key, r.event?.chunk_index]),
    [['82', 0]],
  )
  assert.deepEqual(driver.readDeadLetters(), [])
})
