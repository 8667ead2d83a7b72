import assert from 'node:assert/strict'
import { test } from 'node:test'
import { chunkEmbedStage } from '../../src/chunking/chunk-embed-stage.ts'
import { createChunker } from '../../src/chunking/chunker.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { HashingProvider } from '../../src/embedding/hashing.ts'
import { hashSubject } from '../../src/governance/subject.ts'
import { redactAtSource, type GovernBatchMetrics, type GovernedDocument } from '../../src/operators/govern/index.ts'
import { subjectPrefix } from '../../src/operators/govern/subject-index.ts'
import { withTelemetry, type TelemetryEvent } from '../../src/observability/telemetry.ts'
import type { SuppressionMode } from '../../src/governance/forget/suppression.ts'
import { defaultTableDecoder } from '../../src/operators/table-source.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'

interface Customer {
  readonly id: number
  readonly region: string
  readonly classification: string
  readonly consent?: boolean
}
interface Ticket {
  readonly id: number
  readonly customer_id: number
  readonly subject: string
  readonly body: string
  /** Source change time (what CDC lineage carries), when the test sets it. */
  readonly ts?: number
}

const AUDIT = 'rag.audit'
const DELETIONS = 'governance.deletions'

function topology(options: { mode?: SuppressionMode; version?: string } = {}) {
  const builder = new TopologyBuilder({ applicationId: `gov-${options.version ?? 'v1'}` })
  const customers = builder.table<Customer>('crm.customers', { name: 'customers' })
  const tickets = builder.table<Ticket>('crm.tickets', { name: 'tickets' })
  const governed = tickets
    .join(customers, {
      name: 'join-customers',
      type: 'left',
      foreignKey: (t) => String(t.customer_id),
      joiner: (ticket, customer) => ({ ticket, customer }),
    })
    .govern({
      name: 'govern',
      topologyVersion: options.version ?? 'v1',
      policy: {
        name: 'support',
        version: '3',
        deny: [{ name: 'no-consent', reason: 'customer withdrew consent', when: (_r, c) => c.consent === false }],
        classify: (_r, c) => (typeof c.classification === 'string' ? c.classification : 'internal'),
        outputs: { eu: { maxClassification: 'confidential' }, us: { maxClassification: 'confidential' } },
        residency: (_r, c) => (c.region === 'EU' ? 'eu' : c.region === 'US' ? 'us' : { deny: 'no region' }),
        subjects: (r) => [`customer:${String(r.metadata.customer_id)}`],
      },
      document: ({ ticket }) => ({
        text: ticket.body,
        metadata: { title: ticket.subject, customer_id: ticket.customer_id },
        timestampMs: ticket.ts,
      }),
      joined: ({ customer }) => customer ?? {},
      forget: {
        deletionsTopic: DELETIONS,
        mode: options.mode,
        entityStores: ['tickets'],
        subjectStores: { customers: (s) => (s.startsWith('customer:') ? s.slice('customer:'.length) : null) },
        chunkSets: [
          { store: 'chunk-sets-eu', entityType: 'ticket' },
          { store: 'chunk-sets-us', entityType: 'ticket' },
        ],
      },
      audit: { topic: AUDIT },
    })
  const embedder = new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 8 }))
  for (const region of ['eu', 'us']) {
    governed
      .filter((doc) => doc.region === region, { name: `only-${region}` })
      .stage({
        name: `chunk-${region}`,
        kind: 'chunk+embed',
        stores: [`chunk-sets-${region}`],
        processor: chunkEmbedStage<GovernedDocument>({
          topology: 'gov',
          version: options.version ?? 'v1',
          entityType: 'ticket',
          store: `chunk-sets-${region}`,
          chunker: createChunker({ strategy: { kind: 'recursive', size: 60, overlap: 0 } }),
          embedder,
          text: (doc) => doc.text,
          metadata: (doc) => doc.metadata,
          governance: (doc) => ({
            classification: doc.classification,
            tenant: doc.tenant,
            region: doc.region,
            subjects: doc.subjects,
            policy_version: doc.policy_version,
          }),
        }),
      })
      .to(`rag.chunks.${region}`)
  }
  return builder.build()
}

const LONG =
  'The parcel arrived damaged and the customer wants a refund. Contact anna.schmidt@example.com please. It was the second time this month, and the courier did not answer.'

function request(subject: string, id: string, atMs: number, mode: SuppressionMode = 'FOREVER') {
  return { request_id: id, subject, reason: 'erasure request', requested_by: 'dpo', requested_at_ms: atMs, mode }
}

/** Chunks in a region's table whose subjects include `subject`. */
function chunksOf(driver: TopologyTestDriver, region: string, subject: string): unknown[] {
  return [...driver.readTable(`rag.chunks.${region}`).values()].filter((c) =>
    (c as { subjects: string[] }).subjects.includes(subject),
  )
}

async function seed(driver: TopologyTestDriver): Promise<void> {
  await driver.pipe('crm.customers', '42', { id: 42, region: 'EU', classification: 'internal' })
  await driver.pipe('crm.customers', '7', { id: 7, region: 'US', classification: 'public' })
  for (let id = 1; id <= 12; id++) {
    await driver.pipe('crm.tickets', String(id), {
      id,
      customer_id: id % 2 === 0 ? 42 : 7,
      subject: `Ticket ${id}`,
      body: `${LONG} Ticket number ${id}.`,
    })
  }
}

test('govern redacts before the chunk stage, records the policy version, routes by residency, and audits redactions', async () => {
  const driver = new TopologyTestDriver(topology(), { partitions: 3 })
  await seed(driver)
  const eu = [...driver.readTable('rag.chunks.eu').values()] as Record<string, unknown>[]
  const us = [...driver.readTable('rag.chunks.us').values()] as Record<string, unknown>[]
  assert.ok(eu.length >= 6 && us.length >= 6)
  for (const chunk of [...eu, ...us]) {
    assert.equal(chunk.policy_version, 'support@3')
    assert.doesNotMatch(JSON.stringify(chunk), /anna\.schmidt/)
  }
  assert.ok(
    eu.every(
      (c) => c.region === 'eu' && c.classification === 'internal' && (c.subjects as string[])[0] === 'customer:42',
    ),
  )
  assert.ok(us.every((c) => c.region === 'us' && c.classification === 'public'))
  assert.ok(eu.some((c) => String(c.text).includes('[EMAIL]')))
  // Nothing of the raw text anywhere the topology wrote, stores and changelogs aside from the source table's own.
  for (const topic of [
    'rag.chunks.eu',
    'rag.chunks.us',
    AUDIT,
    'gov-v1-chunk-sets-eu-changelog',
    'gov-v1-govern-subject-index-changelog',
  ]) {
    for (const record of driver.allOutput(topic))
      assert.doesNotMatch(record.rawValue?.toString('utf8') ?? '', /anna\.schmidt/, topic)
  }
  const audits = driver.readOutput(AUDIT).map((r) => r.value as Record<string, unknown>)
  assert.equal(audits.filter((a) => a.kind === 'REDACTED').length, 12)
  assert.ok(audits.every((a) => (a.counts as Record<string, number>).email === 1 || a.kind !== 'REDACTED'))
  assert.deepEqual(driver.readDeadLetters(), [])
  await driver.close()
})

test('a customer reclassified to restricted, denied, or moved region re-triggers through the join and updates or removes every derived chunk', async () => {
  const driver = new TopologyTestDriver(topology(), { partitions: 3 })
  await seed(driver)
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length > 0, true)
  driver.readOutput(AUDIT)

  await driver.pipe('crm.customers', '42', { id: 42, region: 'EU', classification: 'confidential' })
  assert.ok(
    (chunksOf(driver, 'eu', 'customer:42') as { classification: string }[]).every(
      (c) => c.classification === 'confidential',
    ),
  )
  assert.equal(driver.readOutput(AUDIT).filter((r) => (r.value as { kind: string }).kind === 'RECLASSIFIED').length, 6)

  await driver.pipe('crm.customers', '42', { id: 42, region: 'EU', classification: 'restricted' })
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 0, 'restricted exceeds the outputs maximum')
  const denied = driver
    .readOutput(AUDIT)
    .map((r) => r.value as Record<string, unknown>)
    .filter((a) => a.kind === 'DENIED')
  assert.equal(denied.length, 6)
  assert.match(String(denied[0].reason), /classification restricted exceeds confidential/)
  assert.equal(denied[0].subject_hash, hashSubject('customer:42'))

  await driver.pipe('crm.customers', '42', { id: 42, region: 'US', classification: 'internal' })
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 0)
  assert.ok(chunksOf(driver, 'us', 'customer:42').length >= 6, 'moved to the us output')

  await driver.pipe('crm.customers', '42', { id: 42, region: 'US', classification: 'internal', consent: false })
  assert.equal(chunksOf(driver, 'us', 'customer:42').length, 0)
  const reasons = driver
    .readOutput(AUDIT)
    .map((r) => r.value as Record<string, unknown>)
    .filter((a) => a.kind === 'DENIED')
    .map((a) => a.reason)
  assert.deepEqual(new Set(reasons), new Set(['customer withdrew consent']))
  assert.ok(chunksOf(driver, 'us', 'customer:7').length >= 6, 'other customers untouched')
  await driver.close()
})

test('forget: every partition tombstones its chunks of the subject, cleans its stores, writes a non-null suppression and one DELETION_APPLIED; later changes produce nothing', async () => {
  const driver = new TopologyTestDriver(topology(), { partitions: 3 })
  await seed(driver)
  const before = chunksOf(driver, 'eu', 'customer:42').length
  driver.readOutput('rag.chunks.eu')
  driver.readOutput(AUDIT)
  // One small entry per (subject, entity), no list per subject: nothing grows with a subject's rows.
  const entries = [...driver.readStore('govern-subject-index').keys()].filter((k) =>
    k.startsWith(subjectPrefix(hashSubject('customer:42'))),
  )
  assert.deepEqual(entries.map((k) => k.slice(subjectPrefix(hashSubject('customer:42')).length)).sort(), [
    '10',
    '12',
    '2',
    '4',
    '6',
    '8',
  ])

  await driver.pipe(DELETIONS, 'customer:42', request('customer:42', 'r-1', 1000))
  const tombstones = driver.readOutput('rag.chunks.eu').filter((r) => r.value === null)
  assert.equal(tombstones.length, before)
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 0)
  const applied = driver
    .readOutput(AUDIT)
    .map((r) => r.value as { kind: string; request_id: string; counts: Record<string, number> })
  assert.equal(applied.length, 3, 'one DELETION_APPLIED per partition')
  assert.ok(applied.every((a) => a.kind === 'DELETION_APPLIED' && a.request_id === 'r-1' && a.counts.partitions === 3))
  assert.equal(
    applied.reduce((n, a) => n + a.counts.chunks_tombstoned, 0),
    before,
    'the counts equal the tombstones',
  )
  assert.equal(
    applied.reduce((n, a) => n + (a.counts['store_keys_removed:tickets'] ?? 0), 0),
    6,
  )
  assert.equal(
    applied.reduce((n, a) => n + (a.counts['store_keys_removed:customers'] ?? 0), 0),
    1,
  )

  const hash = hashSubject('customer:42')
  const index = driver.readStore('govern-subject-index')
  assert.equal(index.has(`s:${hash}`), false)
  assert.equal([...index.keys()].filter((k) => k.startsWith(subjectPrefix(hash))).length, 0, 'its entries are gone')
  for (let id = 2; id <= 12; id += 2) {
    assert.equal(index.has(`e:${id}`), false)
    assert.equal(driver.readStore('tickets').has(String(id)), false)
    assert.equal(driver.readStore('chunk-sets-eu').has(`ticket:${id}`), false)
  }
  assert.equal(driver.readStore('customers').has('42'), false)
  const suppression = driver.allOutput('gov-v1-govern-forgotten-subjects-changelog')
  assert.equal(suppression.length, 3)
  assert.ok(
    suppression.every((r) => r.rawValue !== null && r.key === hash),
    'never a null: compaction keeps it',
  )
  assert.doesNotMatch(JSON.stringify([...driver.readStore('govern-forgotten-subjects').values()]), /customer:42/)

  // Later changes of the subject, on any partition, produce nothing.
  await driver.pipe('crm.tickets', '2', { id: 2, customer_id: 42, subject: 'again', body: 'back again' })
  await driver.pipe('crm.tickets', '100', { id: 100, customer_id: 42, subject: 'new', body: 'a new ticket' })
  await driver.pipe('crm.customers', '42', { id: 42, region: 'EU', classification: 'public' })
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 0)
  assert.equal(chunksOf(driver, 'us', 'customer:42').length, 0)
  assert.ok(chunksOf(driver, 'us', 'customer:7').length >= 6)
  assert.deepEqual(driver.readDeadLetters(), [])
  await driver.close()
})

test('forget racing an update of the same subject, same batch and across partitions, leaves 0 chunks', async () => {
  for (const order of ['request first', 'updates first']) {
    const driver = new TopologyTestDriver(topology(), { partitions: 3 })
    await seed(driver)
    const updates = [
      { topic: 'crm.customers', key: '42', value: { id: 42, region: 'EU', classification: 'confidential' } },
      ...[2, 4, 6, 8].map((id) => ({
        topic: 'crm.tickets',
        key: String(id),
        value: { id, customer_id: 42, subject: 'edited', body: `edited ${id}` },
      })),
      { topic: 'crm.tickets', key: '200', value: { id: 200, customer_id: 42, subject: 'new', body: 'brand new' } },
    ]
    const forget = { topic: DELETIONS, key: 'customer:42', value: request('customer:42', 'r-race', 1000) }
    await driver.pipeBatch(order === 'request first' ? [forget, ...updates] : [...updates, forget])
    assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 0, order)
    assert.ok(chunksOf(driver, 'us', 'customer:7').length >= 6)
    await driver.close()
  }
})

test('the broadcast copy and a join response racing in one task batch: the request applies first', async () => {
  const driver = new TopologyTestDriver(topology(), { partitions: 3 })
  await seed(driver)
  // The customer change fans out as join responses in the same round as the request's broadcast copies.
  await driver.pipeBatch([
    {
      topic: 'crm.customers',
      key: '42',
      value: { id: 42, region: 'EU', classification: 'public' },
      partition: partitionForString('42', 3),
    },
    {
      topic: DELETIONS,
      key: 'customer:42',
      value: request('customer:42', 'r-2', 1000),
      partition: partitionForString('42', 3),
    },
  ])
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 0)
  await driver.close()
})

test('resurrection: a replay from earliest into a new version, in either order, and a replay after the deletions topic is gone, produce no chunks of the subject', async () => {
  const history: { topic: string; key: string; value: unknown }[] = []
  const customers = [
    { id: 42, region: 'EU', classification: 'internal' },
    { id: 7, region: 'US', classification: 'public' },
  ]
  for (const c of customers) history.push({ topic: 'crm.customers', key: String(c.id), value: c })
  for (let id = 1; id <= 12; id++)
    history.push({
      topic: 'crm.tickets',
      key: String(id),
      value: { id, customer_id: id % 2 === 0 ? 42 : 7, subject: `T${id}`, body: `${LONG} ${id}` },
    })
  const deletion = { topic: DELETIONS, key: 'customer:42', value: request('customer:42', 'r-3', 1000) }

  for (const replay of [
    [...history, deletion],
    [deletion, ...history],
  ]) {
    const v2 = new TopologyTestDriver(topology({ version: 'v2' }), { partitions: 3 })
    for (const record of replay) await v2.pipe(record.topic, record.key, record.value)
    assert.equal(chunksOf(v2, 'eu', 'customer:42').length, 0)
    assert.ok(chunksOf(v2, 'us', 'customer:7').length >= 6)
    await v2.close()
  }

  // The deletions topic's records are gone (retention) but the suppression lives on in its compacted
  // changelog: stores restored from the changelogs alone, then the CDC history replayed, bring nothing back.
  const driver = new TopologyTestDriver(topology(), { partitions: 3 })
  await driver.pipe(deletion.topic, deletion.key, deletion.value)
  await driver.restoreStoresFromChangelogs()
  for (const record of history) await driver.pipe(record.topic, record.key, record.value)
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 0)
  assert.ok(chunksOf(driver, 'us', 'customer:7').length >= 6)
  await driver.close()
})

test('BEFORE_REQUEST suppresses data older than the request and indexes what the subject does afterwards', async () => {
  const driver = new TopologyTestDriver(topology({ mode: 'BEFORE_REQUEST' }), { partitions: 3, startTime: 500 })
  await seed(driver)
  await driver.pipe(DELETIONS, 'customer:42', request('customer:42', 'r-4', 1000, 'BEFORE_REQUEST'))
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 0)
  await driver.pipe('crm.tickets', '2', {
    id: 2,
    customer_id: 42,
    subject: 'old',
    body: 'replayed old change',
    ts: 900,
  })
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 0)
  // The customer's own change re-triggers ticket 2 through the join: its source time (900) still suppresses it.
  await driver.pipe('crm.customers', '42', { id: 42, region: 'EU', classification: 'internal' })
  await driver.pipe('crm.tickets', '300', {
    id: 300,
    customer_id: 42,
    subject: 'new',
    body: 'came back and consented again',
    ts: 1500,
  })
  assert.equal(chunksOf(driver, 'eu', 'customer:42').length, 1)
  await driver.close()
})

test('an undecodable deletion request is dead-lettered by each task; a policy function that throws dead-letters its row without its message', async () => {
  const driver = new TopologyTestDriver(topology(), { partitions: 2 })
  await driver.pipe(DELETIONS, 'customer:1', { subject: 'nope' })
  const dead = driver.readDeadLetters()
  assert.equal(dead.length, 2)
  assert.equal(dead[0].headers['ragstream.error.code'], 'RS_DECODE_FAILED')

  await driver.pipe('crm.customers', '9', { id: 9, region: 'EU', classification: 'top-secret-label' })
  await driver.pipe('crm.tickets', '90', { id: 90, customer_id: 9, subject: 'x', body: 'mail me at anna@example.com' })
  const invalid = driver.readDeadLetters()
  assert.equal(invalid.length, 1)
  assert.equal(invalid[0].headers['ragstream.error.code'], 'RS_RECORD_INVALID')
  assert.equal(invalid[0].headers['ragstream.node'], 'govern')
  assert.match(invalid[0].headers['ragstream.error.message'], /classify returned a label that is not on the scale/)
  assert.doesNotMatch(invalid[0].headers['ragstream.error.message'], /top-secret|anna/)
  assert.equal(chunksOf(driver, 'eu', 'customer:9').length, 0)
  await driver.close()
})

test('describe shows the govern processor, its stores, the broadcast topic and the audit sink', () => {
  const text = topology().describe()
  assert.match(text, /Source: govern-deletions-source \(topics: \[governance\.deletions\]\)/)
  assert.match(
    text,
    /Processor: govern \(stores: \[govern-forgotten-subjects, govern-subject-index, tickets, customers, chunk-sets-eu, chunk-sets-us\]\) \[govern: support@3, forget FOREVER, async, batched\]/,
  )
  assert.match(text, /repartition: gov-v1-govern-deletions-broadcast-repartition/)
  assert.match(text, /Sink: govern-audit-sink \(topic: rag\.audit\)/)
})

test('validation lists the policy and forget problems with their paths', () => {
  const builder = new TopologyBuilder({ applicationId: 'bad' })
  builder
    .table<{ body: string }>('t', { name: 't' })
    .govern({
      name: 'govern',
      policy: { name: 'p', version: '1', outputs: { a: {}, b: {} } },
      document: (row) => ({ text: row.body }),
      forget: { deletionsTopic: 'bad topic', entityStores: ['nope'] },
      audit: { topic: 'audit' },
    })
    .to('out')
  assert.throws(
    () => builder.build(),
    (error: Error) => {
      assert.match(error.message, /\/topology\/nodes\/govern\/policy\/residency: required/)
      assert.match(error.message, /\/topology\/nodes\/govern\/forget\/deletionsTopic/)
      assert.match(error.message, /store 'nope' is not a store/)
      return true
    },
  )
})

/** Tickets joined to customers, governed without `forget`; tickets redacted as they are decoded. */
function unforgettable(observed: { govern: GovernBatchMetrics[]; source: Record<string, number>[] }) {
  const builder = new TopologyBuilder({ applicationId: 'gov-nf' })
  const customers = builder.table<Customer>('crm.customers', { name: 'customers' })
  builder
    .table<Ticket>('crm.tickets', {
      name: 'tickets',
      decode: redactAtSource(defaultTableDecoder, {
        redact: { detectors: { email: false } },
        observe: (counts) => void observed.source.push({ ...counts }),
      }),
    })
    .join(customers, {
      name: 'join-customers',
      type: 'left',
      foreignKey: (t) => String(t.customer_id),
      joiner: (ticket, customer) => ({ ticket, customer }),
    })
    .govern({
      name: 'govern',
      policy: {
        name: 'support',
        version: '4',
        deny: [{ name: 'no-consent', reason: 'customer withdrew consent', when: (_r, c) => c.consent === false }],
        classify: (_r, c) => (typeof c.classification === 'string' ? c.classification : 'internal'),
      },
      document: ({ ticket }) => ({ text: ticket.body, metadata: { title: ticket.subject } }),
      joined: ({ customer }) => customer ?? {},
      audit: { topic: AUDIT },
      observe: (batch) => void observed.govern.push(batch),
    })
    .stage({
      name: 'chunk-embed',
      kind: 'chunk+embed',
      stores: ['chunk-sets'],
      processor: chunkEmbedStage<GovernedDocument>({
        topology: 'gov-nf',
        version: 'v1',
        entityType: 'ticket',
        store: 'chunk-sets',
        chunker: createChunker({ strategy: { kind: 'recursive', size: 400, overlap: 0 } }),
        embedder: new Embedder(new HashingProvider({ kind: 'hashing', dimensions: 8 })),
        text: (doc) => doc.text,
        metadata: (doc) => doc.metadata,
        governance: (doc) => ({ classification: doc.classification, policy_version: doc.policy_version }),
      }),
    })
    .to('rag.chunks')
  return builder.build()
}

test('without forget: govern still denies, classifies, redacts and audits; no deletions topic, broadcast topic or forgotten-subjects store', async () => {
  const observed = { govern: [] as GovernBatchMetrics[], source: [] as Record<string, number>[] }
  const topology = unforgettable(observed)
  const text = topology.describe()
  assert.match(
    text,
    /Processor: govern \(stores: \[govern-subject-index\]\) \[govern: support@4, no forget, async, batched\]/,
  )
  assert.doesNotMatch(text, /deletions|forgotten-subjects|broadcast/)
  assert.deepEqual(
    topology
      .compile({ partitions: 2 })
      .topics.filter((t) => t.role !== 'sink' && t.role !== 'dead-letter')
      .map((t) => t.name)
      .sort(),
    [
      'crm.customers',
      'crm.tickets',
      'gov-nf-chunk-sets-changelog',
      'gov-nf-customers-changelog',
      'gov-nf-govern-subject-index-changelog',
      'gov-nf-join-customers-response-repartition',
      'gov-nf-join-customers-right-changelog',
      'gov-nf-join-customers-right-repartition',
      'gov-nf-join-customers-subscription-repartition',
      'gov-nf-join-customers-subscriptions-changelog',
      'gov-nf-tickets-changelog',
    ].sort(),
  )

  const driver = new TopologyTestDriver(topology, { partitions: 2 })
  await driver.pipe('crm.customers', '42', { id: 42, region: 'EU', classification: 'internal' })
  await driver.pipe('crm.customers', '7', { id: 7, region: 'US', classification: 'public', consent: false })
  await driver.pipe('crm.tickets', '1', {
    id: 1,
    customer_id: 42,
    subject: 'Refund for 4111 1111 1111 1111',
    body: 'Call +44 20 7946 0958 or write to anna.schmidt@example.com.',
  })
  await driver.pipe('crm.tickets', '2', { id: 2, customer_id: 7, subject: 'Denied', body: 'No consent.' })

  // The source decoder masked the phone number and the card (email kept there); govern masked the email.
  assert.deepEqual(observed.source, [{ phone: 1, payment_card: 1 }])
  const chunks = [...driver.readTable('rag.chunks').values()] as Record<string, unknown>[]
  assert.equal(chunks.length, 1)
  assert.equal(chunks[0].classification, 'internal')
  assert.equal(chunks[0].policy_version, 'support@4')
  assert.doesNotMatch(JSON.stringify(chunks[0]), /anna\.schmidt|7946|4111/)
  const kinds = () => driver.readOutput(AUDIT).map((r) => (r.value as { kind: string }).kind)
  assert.deepEqual(kinds().sort(), ['DENIED', 'REDACTED'])
  assert.deepEqual(
    observed.govern.reduce(
      (sum, b) => ({
        emitted: sum.emitted + b.emitted,
        denied: sum.denied + b.denied,
        email: sum.email + (b.redactions.email ?? 0),
      }),
      { emitted: 0, denied: 0, email: 0 },
    ),
    { emitted: 1, denied: 1, email: 1 },
  )

  await driver.pipe('crm.customers', '42', { id: 42, region: 'EU', classification: 'confidential' })
  assert.deepEqual(kinds(), ['REDACTED', 'RECLASSIFIED'], 'the subject index remembers classifications without forget')
  assert.equal(
    ([...driver.readTable('rag.chunks').values()][0] as Record<string, unknown>).classification,
    'confidential',
  )
  await driver.pipe('crm.tickets', '1', null)
  assert.equal(driver.readTable('rag.chunks').size, 0)
  assert.deepEqual(driver.readDeadLetters(), [])
  await driver.close()
})

test('govern and redactAtSource report their counts to the telemetry scope the batch runs in, and to nobody outside one', async () => {
  const observed = { govern: [] as GovernBatchMetrics[], source: [] as Record<string, number>[] }
  const driver = new TopologyTestDriver(unforgettable(observed), { partitions: 1 })
  await driver.pipe('crm.customers', '42', { id: 42, region: 'EU', classification: 'internal' })
  const events: TelemetryEvent[] = []
  await withTelemetry(
    (e) => events.push(e),
    () =>
      driver.pipe('crm.tickets', '1', {
        id: 1,
        customer_id: 42,
        subject: 'x',
        body: 'Call +44 20 7946 0958 or write to anna.schmidt@example.com.',
      }),
  )
  await driver.pipe('crm.tickets', '2', { id: 2, customer_id: 42, subject: 'y', body: 'Write to bob@example.org.' })
  assert.deepEqual(
    events.filter((e) => e.kind === 'source-redactions'),
    [{ kind: 'source-redactions', topic: 'crm.tickets', redactions: { phone: 1 } }],
  )
  const governed = events.filter((e) => e.kind === 'govern')
  assert.equal(governed.length, 1)
  assert.deepEqual(governed[0], {
    kind: 'govern',
    node: 'govern',
    emitted: 1,
    denied: 0,
    suppressed: 0,
    deleted: 0,
    requestsApplied: 0,
    entitiesForgotten: 0,
    redactions: { email: 1 },
  })
  assert.equal(observed.govern.length, 2, 'observe sees every govern batch, in a scope or not')
  await driver.close()
})

test('forget: null is refused with a hint; leaving forget out is not', () => {
  const build = (forget: unknown) => {
    const builder = new TopologyBuilder({ applicationId: 'nf' })
    builder
      .table<{ body: string }>('t', { name: 't' })
      .govern({
        name: 'govern',
        policy: { name: 'p', version: '1' },
        document: (row) => ({ text: row.body }),
        audit: { topic: 'audit' },
        ...(forget === undefined ? {} : { forget: forget as never }),
      })
      .to('out')
    return builder.build()
  }
  assert.throws(
    () => build(null),
    /\/topology\/nodes\/govern\/forget: must be \{ deletionsTopic, mode\?, … \} \(or left out/,
  )
  assert.doesNotThrow(() => build(undefined))
})

test('audit events only when a decision changes: a re-triggered, still-denied ticket writes no second DENIED; allowed again, it is indexed', async () => {
  const driver = new TopologyTestDriver(topology(), { partitions: 2 })
  const denied = () => driver.readOutput(AUDIT).filter((r) => (r.value as { kind: string }).kind === 'DENIED')
  await driver.pipe('crm.customers', '9', { id: 9, region: 'EU', classification: 'internal', consent: false })
  await driver.pipe('crm.tickets', '1', { id: 1, customer_id: 9, subject: 'Hi', body: 'short body' })
  assert.equal(denied().length, 1, 'denied once')
  // The customer changes three times (still no consent): each change re-triggers the ticket through the join.
  for (const classification of ['public', 'confidential', 'internal'])
    await driver.pipe('crm.customers', '9', { id: 9, region: 'EU', classification, consent: false })
  assert.equal(denied().length, 0, 'the same denial again writes nothing')
  assert.equal(driver.readTable('rag.chunks.eu').size, 0)
  // Another reason is another decision: audited.
  await driver.pipe('crm.customers', '9', { id: 9, region: 'MARS', classification: 'internal', consent: true })
  assert.equal(denied().length, 1, 'a new reason is audited')
  await driver.pipe('crm.customers', '9', { id: 9, region: 'EU', classification: 'internal', consent: true })
  assert.ok(driver.readTable('rag.chunks.eu').size > 0, 'allowed again: indexed')
  // Forgetting still finds the ticket that was denied before (it stayed in the subject index).
  await driver.pipe('crm.customers', '9', { id: 9, region: 'EU', classification: 'internal', consent: false })
  await driver.pipe(DELETIONS, 'customer:9', request('customer:9', 'r-9', 1))
  assert.equal(driver.readStore('tickets').size, 0)
  assert.equal(driver.readStore('govern-subject-index').size, 0)
  await driver.close()
})
