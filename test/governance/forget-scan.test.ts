// Forgetting by construction, checked physically: support-copilot (which names subjects, never stores)
// runs on the real services (KafkaRuntime, Redis stores, registry); then every Redis key of the app and
// every internal topic (changelogs, repartition topics, dead letters: all records from the log start,
// read_uncommitted) is scanned for the subject's raw values and row keys — before the forget (found:
// the scan works), after it, and after later changes of the subject (0 found).
//
// What "found" means per place, and why:
//   - Redis: any key or field or value of the app's keys (`rs:{<applicationId>:…`).
//   - repartition topics and dead letters: any record still in the log (consumed records are purged up
//     to the committed offsets after each commit, so they are physically gone).
//   - changelog topics: any record compaction keeps, i.e. the latest record of its key unless that is
//     a tombstone. Older records of the key stay on disk until the log cleaner runs (a broker
//     setting: segment.ms / min.cleanable.dirty.ratio), which docs/governance.md states.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Producer } from '@platformatic/kafka'
import { encodeChange, type Row } from '../../src/generator/debezium-envelope.ts'
import { supportTables } from '../../src/generator/support-dataset.ts'
import { buildDeletionRequest } from '../../src/governance/forget/deletion-request.ts'
import { deletionRequestCodec } from '../../src/governance/forget/governance-codecs.ts'
import { supportCopilot } from '../../topologies/support-copilot.ts'
import { testRagServices } from '../support/rag-services.ts'
import { caughtUpAndPurged, scanApp } from '../support/physical-scan.ts'
import { runAppOnStack } from '../support/app-on-stack.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd } from '../support/topic-offsets.ts'

const PARTITIONS = 3

test(
  'forget by construction: no Redis key and no internal topic of the app holds the subject after the forget, nor after its later changes',
  { timeout: 240_000 },
  async (t) => {
    const prefix = uniqueName('fscan')
    const applicationId = uniqueName('fscan-app')
    const chunkTopic = uniqueName('rag.chunks.fscan')
    const deletionsTopic = `${prefix}.governance.deletions`
    const tables = supportTables(prefix)
    const topics = {
      tickets: `${prefix}.public.tickets`,
      customers: `${prefix}.public.customers`,
      products: `${prefix}.products`,
    }
    await createTopics(t, [topics.customers, topics.products, deletionsTopic], PARTITIONS, [
      { name: 'cleanup.policy', value: 'compact' },
    ])
    await createTopics(t, [topics.tickets, chunkTopic], PARTITIONS)
    const services = await testRagServices(t, chunkTopic)
    const processor = supportCopilot({ prefix, applicationId, chunkTopic, deletionsTopic, services }).compile({
      partitions: PARTITIONS,
      sinkPartitions: { [chunkTopic]: PARTITIONS },
    })
    const { admin, redis, events, internal, stop } = await runAppOnStack(t, processor, {
      applicationId,
      instanceId: 'fscan',
      subjects: [`${chunkTopic}-audit-value`, `${deletionsTopic}-value`],
      runtime: { repartitionPurgeIntervalMs: 0 }, // purge after every commit, so the scan needs no wait for the interval
    })

    const producer = new Producer({ clientId: uniqueName('fscan-feed'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    t.after(() => producer.close())
    const envelope = { withSchema: false, tsMs: 1_700_000_000_000, lsn: 1, txId: 1 }
    const change = (spec: 'customers' | 'tickets', op: 'c' | 'u', row: Row) =>
      encodeChange(tables[spec], { op, before: null, after: row }, envelope).map((r) => ({
        topic: topics[spec],
        key: r.key,
        value: r.value!,
      }))
    const customer = (id: number, name: string, region = 'eu') => ({
      id,
      name,
      email: `${name.split(' ')[0].toLowerCase()}@example.org`,
      tenant: 'acme',
      tier: 'pro',
      region,
      status: 'active',
      classification: 'internal',
      updated_at: 1,
    })
    const ticket = (id: number, customerId: number, body: string) => ({
      id,
      customer_id: customerId,
      product_sku: 'SKU-Q',
      subject: `Ticket ${id}`,
      body,
      status: 'open',
      priority: 2,
      updated_at: 1,
    })
    const SUBJECT = 7_770_001
    const OTHER = 7_770_002
    const send = (messages: { topic: string; key: Buffer; value: Buffer }[]) => producer.send({ messages })
    await send([
      {
        topic: topics.products,
        key: Buffer.from('SKU-Q'),
        value: Buffer.from('{"sku":"SKU-Q","name":"Ledger","category":"billing"}'),
      },
      ...change('customers', 'c', customer(SUBJECT, 'Zorblax Quagmire')),
      ...change('customers', 'c', customer(OTHER, 'Mirabel Ostrander')),
    ])
    await send([
      ...change(
        'tickets',
        'c',
        ticket(8_880_001, SUBJECT, 'Zorblax Quagmire here: the ledger export fails every night.'),
      ),
      ...change('tickets', 'c', ticket(8_880_002, SUBJECT, 'Second issue from Zorblax: invoices are duplicated.')),
      ...change('tickets', 'c', ticket(8_880_003, OTHER, 'Mirabel Ostrander: the dashboard is slow on Mondays.')),
    ])
    const sources = processor.sourceTopics.filter((s) => !internal.some((x) => x.name === s))
    const repartitions = internal.filter((x) => x.role === 'repartition').map((x) => x.name)
    const caughtUp = () => caughtUpAndPurged(admin, PARTITIONS, applicationId, sources, repartitions, events)
    await caughtUp()

    /** Occurrences of the subject's raw values and row keys in every Redis key of the app and every internal topic. */
    const needles = ['Zorblax', String(SUBJECT), '8880001', '8880002', '8880009']
    const scan = () => scanApp(redis, applicationId, internal, PARTITIONS, needles)

    const before = await scan()
    assert.ok(
      before.found.some((f) => f.startsWith('redis') && f.endsWith('Zorblax')),
      `the scan sees Redis: ${before.found.join('\n')}`,
    )
    assert.ok(
      before.found.some((f) => !f.startsWith('redis')),
      `the scan sees the internal topics: ${before.found.join('\n')}`,
    )
    const other = () =>
      redis.keys(`rs:{${applicationId}:tickets:*`).then(async (keys) => {
        for (const key of keys) if ((await redis.hgetallBuffer(key))['v:8880003'] !== undefined) return true
        return false
      })
    assert.ok(await other(), "the other customer's ticket is stored")

    // ragstream forget --subject customer:7770001 (the Avro request it writes, keyed by subject).
    const codec = deletionRequestCodec({ registryUrl: endpoints.schemaRegistryUrl, topic: deletionsTopic })
    await codec.open()
    const request = buildDeletionRequest({
      subject: `customer:${SUBJECT}`,
      reason: 'erasure',
      requestedBy: 'dpo',
      requestedAtMs: Date.now(),
    })
    await send([{ topic: deletionsTopic, key: Buffer.from(request.subject), value: codec.encode(request) }])
    await caughtUp()
    const after = await scan()
    assert.deepEqual(after.found, [], 'after the forget')
    assert.ok(await other(), "the other customer's ticket stays")

    // Later changes of the forgotten subject: an update of the customer, of an old ticket, and a new ticket.
    await send([
      ...change('customers', 'u', customer(SUBJECT, 'Zorblax Returned')),
      ...change('tickets', 'u', ticket(8_880_001, SUBJECT, 'Zorblax again: still failing.')),
      ...change('tickets', 'c', ticket(8_880_009, SUBJECT, 'A new ticket by Zorblax.')),
    ])
    await caughtUp()
    const later = await scan()
    assert.deepEqual(later.found, [], 'after later changes of the subject')

    // And the chunk table has none of the subject's tickets: only the other customer's.
    const chunks = await readToEnd(admin, PARTITIONS, [chunkTopic])
    const live = new Map<string, Buffer | null>()
    for (const r of chunks) if (r.key !== null) live.set(r.key.toString(), r.value)
    assert.ok([...live.values()].some((v) => v !== null))
    for (const v of live.values()) if (v !== null) assert.ok(!v.toString('latin1').includes('Zorblax'))
    assert.ok(!events.some((e) => e.event === 'fatal'))
    // The processor ran the whole test without failing, and stops before the teardown deletes its topics.
    await stop()
  },
)
