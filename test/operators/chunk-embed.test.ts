import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  MemoryRagServices,
  TopologyBuilder,
  TopologyTestDriver,
  definePolicy,
  type ChunkEvent,
  type TailServices,
} from '../../src/index.ts'
import { RagServices } from '../../src/config/rag-services.ts'
import { Redis } from 'ioredis'

interface Customer {
  readonly id: number
  readonly region: string
}
interface Ticket {
  readonly id: number
  readonly customer_id: number
  readonly subject: string
  readonly body: string
}

const policy = definePolicy({
  name: 'tail',
  version: '1',
  outputs: { eu: { maxClassification: 'restricted' } },
  residency: (_r, c) => (c.region === 'eu' ? 'eu' : { deny: 'no region' }),
  subjects: (r) => [`customer:${String(r.metadata.customer_id)}`],
})

/** The whole RAG tail declared, naming no service, store or codec. */
function topology(services?: TailServices) {
  const builder = new TopologyBuilder({ applicationId: 'tail-test', ...(services ? { services } : {}) })
  const customers = builder.table<Customer>('crm.customers', { name: 'customers' })
  builder
    .table<Ticket>('crm.tickets', { name: 'tickets' })
    .join(customers, {
      name: 'join-customers',
      type: 'left',
      foreignKey: (t) => String(t.customer_id),
      joiner: (ticket, customer) => ({ ticket, customer }),
    })
    .govern({
      name: 'govern',
      policy,
      document: ({ ticket }) => ({
        text: ticket.body,
        metadata: { title: ticket.subject, customer_id: ticket.customer_id },
      }),
      joined: ({ customer }) => customer ?? {},
      forget: { deletionsTopic: 'governance.deletions' },
    })
    .chunk({ entityType: 'ticket', strategy: { kind: 'recursive', size: 80 }, template: '{title}\n\n{text}' })
    .embed()
    .toChunks('rag.chunks.tail')
  return builder.build()
}

/** The chunk table as the sink would hold it (audit events share the topic). */
function chunkTable(driver: TopologyTestDriver): ChunkEvent[] {
  return [...driver.readTable('rag.chunks.tail').values()].filter((v) => (v as ChunkEvent).chunk_id) as ChunkEvent[]
}

const BODY =
  'The parcel arrived damaged and the customer wants a refund. Write to anna.schmidt@example.com please. It was the second time this month, and the courier did not answer the phone.'

test('the declarative tail runs in the driver with nothing running: chunks embedded, audit on the chunk topic, forget uncaches every version', async () => {
  const driver = new TopologyTestDriver(topology(), { partitions: 3 })
  assert.ok(driver.services instanceof MemoryRagServices)
  const services = driver.services as MemoryRagServices
  await driver.pipe('crm.customers', '7', { id: 7, region: 'eu' })
  await driver.pipe('crm.tickets', 't1', { id: 1, customer_id: 7, subject: 'Broken parcel', body: BODY })
  const chunks = chunkTable(driver)
  assert.ok(chunks.length >= 2, `several chunks, got ${chunks.length}`)
  for (const chunk of chunks) {
    assert.equal(chunk.entity_key, 't1')
    assert.equal(chunk.embedding.length, 384)
    assert.ok(chunk.text.startsWith('Broken parcel\n\n'), 'the template took the governed metadata')
    assert.ok(!chunk.text.includes('anna.schmidt@example.com'), 'redacted before chunking')
    assert.deepEqual(chunk.subjects, ['customer:7'])
    assert.equal(chunk.region, 'eu')
  }
  // Audit events (the redaction) ride the chunk topic, JSON in the driver.
  const audit = driver.allOutput('rag.chunks.tail').filter((r) => (r.value as { event_id?: string })?.event_id)
  assert.ok(audit.some((r) => (r.value as { kind: string }).kind === 'REDACTED'))

  // An edit makes a second version of the chunks; both are cached.
  await driver.pipe('crm.tickets', 't1', {
    id: 1,
    customer_id: 7,
    subject: 'Broken parcel',
    body: `${BODY} Update: still waiting.`,
  })
  const model = services.embedder.model
  const cachedBefore = services.embeddingCache.hashes(model).length
  assert.ok(cachedBefore > chunks.length, `both versions cached (${cachedBefore})`)

  await driver.pipe('governance.deletions', 'customer:7', {
    request_id: 'r1',
    subject: 'customer:7',
    reason: 'erasure',
    requested_by: 'dpo',
    requested_at_ms: 1,
    mode: 'FOREVER',
  })
  assert.equal(chunkTable(driver).length, 0, 'every chunk tombstoned')
  assert.deepEqual(services.embeddingCache.hashes(model), [], 'every version of its chunks uncached')
  assert.equal(driver.readStore('chunk-embed-chunk-sets').size, 0)
  assert.deepEqual(driver.readDeadLetters(), [])
  await driver.close()
})

test('the driver replaces the services a topology was built with, unless the test passes its own', async () => {
  // Services that would connect to Redis and the registry on their first use: the driver must not touch them.
  const redis = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0 })
  redis.on('error', () => {})
  const real = new RagServices({ redis, registryUrl: 'http://127.0.0.1:1', chunkTopic: 'rag.chunks.tail' })
  const driver = new TopologyTestDriver(topology(real), { partitions: 1 })
  await driver.pipe('crm.customers', '7', { id: 7, region: 'eu' })
  await driver.pipe('crm.tickets', 't1', { id: 1, customer_id: 7, subject: 'Hi', body: 'short text' })
  assert.equal(chunkTable(driver).length, 1)
  await driver.close()
  await real.close()

  const mine = new MemoryRagServices({ embedding: { kind: 'hashing', dimensions: 16 } })
  const own = new TopologyTestDriver(topology(), { partitions: 1, services: mine })
  await own.pipe('crm.customers', '7', { id: 7, region: 'eu' })
  await own.pipe('crm.tickets', 't1', { id: 1, customer_id: 7, subject: 'Hi', body: 'short text' })
  const [chunk] = chunkTable(own)
  assert.equal(chunk.embedding.length, 16)
  assert.equal(chunk.lineage.embedding_model, 'hashing:v1@16')
  await own.close()
  await mine.close()
})

test('validation: chunk needs an entity type and text unless after govern; toChunks needs chunk(…).embed(); govern needs an audit topic or a chunk topic', () => {
  const builder = new TopologyBuilder({ applicationId: 'tail-bad' })
  const t = builder.table<Ticket>('crm.tickets', { name: 'tickets' })
  t.chunk({ entityType: 'Ticket!', strategy: { kind: 'recursive', size: 0 } })
    .embed()
    .to('out')
  t.toChunks('rag.chunks.bad', { name: 'bad-chunks' })
  t.govern({ name: 'govern', policy, document: (x) => ({ text: x.body }) })
  const error = (() => {
    try {
      builder.build()
    } catch (e) {
      return e as Error
    }
    return undefined
  })()
  assert.ok(error)
  const message = error.message
  assert.match(message, /chunk-embed\/chunk\/entityType/)
  assert.match(message, /chunk-embed\/chunk\/strategy/)
  assert.match(message, /chunk-embed\/chunk\/text: required unless the input is govern/)
  assert.match(message, /bad-chunks\/inputs: toChunks writes chunk events/)
  assert.match(message, /govern\/audit: required/)
})
