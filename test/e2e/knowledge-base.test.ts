// knowledge-base on the Kafka runtime (exactly once, in-memory stores restored from changelogs):
// once it has indexed 30 articles, articles and categories change — section edits, unpublishing, a reclassified and a
// deleted category, a malformed article — and the committed chunk table equals the test driver's. Audit events ride
// the chunk topic beside the chunks (governed, no forget): the reclassification's RECLASSIFIED events are there.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { encodeChange } from '../../src/generator/debezium-envelope.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { DEAD_LETTER_HEADERS } from '../../src/topology/compile.ts'
import { knowledgeBase } from '../../topologies/knowledge-base.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { decodeChunkEvents, testRagServices } from '../support/rag-services.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd, waitCaughtUp } from '../support/topic-offsets.ts'

const PARTITIONS = 2

/** Audit events ride the chunk topic beside the chunk events (keyed by event id). */
const isAudit = (value: unknown): value is { kind: string; entity_key_hash: string } =>
  typeof value === 'object' && value !== null && 'event_id' in value && 'kind' in value

test(
  "knowledge-base e2e: the Kafka runtime's committed chunk table equals the test driver's; a malformed article is dead-lettered",
  { timeout: 90_000 },
  async (t) => {
    await checkKafka(endpoints)
    const prefix = uniqueName('e2e-kb')
    const applicationId = uniqueName('knowledge-base-e2e')
    const chunkTopic = uniqueName('rag.chunks.knowledge-base-e2e')
    const ARTICLES = `${prefix}.articles`
    const CATEGORIES = `${prefix}.public.categories`
    const categoriesTable = {
      server: prefix,
      schema: 'public',
      table: 'categories',
      key: ['id'],
      columns: [
        { name: 'id', type: 'int64', optional: false },
        { name: 'name', type: 'string', optional: false },
        { name: 'classification', type: 'string', optional: false },
      ],
    } as const
    const admin = new Admin({ clientId: uniqueName('e2e-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    let internalTopics: string[] = []
    t.after(async () => {
      await admin.deleteTopics({ topics: internalTopics }).catch(() => {})
      await admin.deleteGroups({ groups: [applicationId] }).catch(() => {})
      await admin.close()
    })
    await createTopics(t, [ARTICLES, CATEGORIES], PARTITIONS, [{ name: 'cleanup.policy', value: 'compact' }])
    await createTopics(t, [chunkTopic], PARTITIONS)

    const services = await testRagServices(t, chunkTopic)
    t.after(() => deleteSubject(`${chunkTopic}-audit-value`))
    const processor = knowledgeBase({ prefix, applicationId, chunkTopic, services }).compile({
      partitions: PARTITIONS,
      sinkPartitions: { [chunkTopic]: PARTITIONS },
    })
    internalTopics = processor.topics.filter((x) => x.role !== 'source' && x.role !== 'sink').map((x) => x.name)
    const events: RuntimeEvent[] = []
    const runtime = new KafkaRuntime(processor, {
      brokers: endpoints.kafkaBrokers,
      stores: new Map(processor.storeNames.map((name) => [name, new MemoryStateStore(name)])),
      instanceId: 'e2e',
      sessionTimeoutMs: 6_000,
      transactionTimeoutMs: 30_000,
      batchMaxRecords: 20,
      fetchMaxWaitMs: 100,
      onEvent: (e) => events.push(e),
    })
    const running = runtime.run()
    t.after(async () => {
      runtime.stop()
      await running.catch(() => {})
    })

    const producer = new Producer({
      clientId: uniqueName('e2e-kb'),
      bootstrapBrokers: [...endpoints.kafkaBrokers],
      idempotent: true,
    })
    t.after(() => producer.close())
    const category = (op: 'r' | 'u' | 'd', id: number, name: string, classification: string) =>
      encodeChange(
        categoriesTable,
        {
          op,
          before: op === 'r' ? null : { id, name, classification },
          after: op === 'd' ? null : { id, name, classification },
        },
        { withSchema: true, tsMs: Date.now(), lsn: 1, txId: 1 },
      ).map((r) => ({ topic: CATEGORIES, key: r.key, value: r.value ?? undefined }))
    const body = (n: number, version = 0) =>
      Array.from(
        { length: n },
        (_, s) => `## Step ${s}\n\nDo thing ${s}${s === 1 ? ` (revision ${version})` : ''} and check the *result*.`,
      ).join('\n\n')
    const article = (i: number, extra: Record<string, unknown> = {}) => ({
      topic: ARTICLES,
      key: Buffer.from(`article-${i}`),
      value: Buffer.from(
        JSON.stringify({
          slug: `article-${i}`,
          category_id: (i % 3) + 1,
          title: `How to ${i}`,
          body: body(2 + (i % 3)),
          published: i % 5 !== 0,
          ...extra,
        }),
      ),
    })
    await producer.send({
      messages: [
        ...category('r', 1, 'Billing', 'public'),
        ...category('r', 2, 'Security', 'internal'),
        ...category('r', 3, 'Mobile', 'public'),
      ],
    })
    await producer.send({ messages: Array.from({ length: 30 }, (_, i) => article(i)) })
    const repartitions = processor.topics.filter((x) => x.role === 'repartition').map((x) => x.name)
    await waitCaughtUp(admin, PARTITIONS, applicationId, [ARTICLES, CATEGORIES], repartitions, 60_000, events)
    await producer.send({
      messages: [
        ...[1, 4, 7].map((i) => ({
          ...article(i),
          value: Buffer.from(
            JSON.stringify({
              slug: `article-${i}`,
              category_id: (i % 3) + 1,
              title: `How to ${i}`,
              body: body(2 + (i % 3), 1),
              published: true,
            }),
          ),
        })),
        article(2, { published: false }),
        {
          topic: ARTICLES,
          key: Buffer.from('article-broken'),
          value: Buffer.from('{"slug": "article-broken", "body": "# cut'),
        },
        ...category('u', 2, 'Security', 'restricted'),
        ...category('d', 3, 'Mobile', 'public'),
        article(31),
      ],
    })

    await waitCaughtUp(admin, PARTITIONS, applicationId, [ARTICLES, CATEGORIES], repartitions, 60_000, events)
    runtime.stop()
    await running

    const committed = await readToEnd(admin, PARTITIONS, [chunkTopic])
    const values = (await decodeChunkEvents(committed.map((r) => r.value))) as unknown[]
    const audits = values.filter(isAudit)
    const decoded = values.filter((v) => !isAudit(v)) as (ChunkEvent | null)[]
    const table = new Map<string, ChunkEvent | null>()
    committed.filter((_r, i) => !isAudit(values[i])).forEach((r, i) => table.set(r.key!.toString(), decoded[i]))

    const input = await readToEnd(admin, PARTITIONS, [ARTICLES, CATEGORIES])
    const driver = new TopologyTestDriver(knowledgeBase({ prefix, applicationId, chunkTopic, services }), {
      partitions: PARTITIONS,
      services,
    })
    t.after(() => driver.close())
    await driver.pipeBatch(
      input.map((r) => ({
        topic: r.topic,
        key: r.key,
        value: r.value,
        partition: r.partition,
        timestamp: r.timestamp,
      })),
    )
    const driverRecords = driver.readOutput(chunkTopic)
    const driverDecoded = (await decodeChunkEvents(driverRecords.map((r) => r.rawValue))) as unknown[]
    const expected = new Map<string, ChunkEvent | null>()
    driverRecords.forEach(
      (r, i) => void (isAudit(driverDecoded[i]) || expected.set(r.key!, driverDecoded[i] as ChunkEvent | null)),
    )

    // Same content, classification and ids; lineage positions may differ (see docs/reference-topologies.md).
    // A tombstone and a chunk id never emitted are the same: no row.
    const view = (e: ChunkEvent | null | undefined) =>
      e
        ? [
            e.entity_key,
            e.chunk_index,
            e.text,
            e.content_hash,
            e.metadata,
            e.classification,
            Array.from(e.embedding).join(),
          ]
        : null
    const keys = [...new Set([...table.keys(), ...expected.keys()])]
      .filter((k) => table.get(k) || expected.get(k))
      .sort()
    assert.deepEqual(
      keys.map((k) => [k, view(table.get(k))]),
      keys.map((k) => [k, view(expected.get(k))]),
    )

    const live = [...table.values()].filter((e): e is ChunkEvent => e !== null)
    assert.ok(
      decoded.some((e) => e === null),
      'unpublished articles and the deleted category left tombstones',
    )
    assert.ok(decoded.length > table.size, 'edits and the reclassification re-emitted chunks')
    // Articles 1, 4, 7, … (category 2, Security) were indexed, then reclassified internal → restricted.
    const reclassified = audits.filter((a) => a.kind === 'RECLASSIFIED')
    assert.ok(reclassified.length >= 5, `RECLASSIFIED for the Security articles (${reclassified.length})`)
    assert.ok(live.every((e) => e.policy_version === 'knowledge-base@1'))
    const articles = new Set(live.map((e) => e.entity_key))
    assert.ok(!articles.has('article-2') && !articles.has('article-5'), 'unpublished articles have no chunks')
    assert.ok(
      ![...articles].some((slug) => Number(slug.split('-')[1]) % 3 === 2),
      'articles of the deleted category have no chunks',
    )
    assert.ok(live.filter((e) => e.metadata.includes('"Security"')).every((e) => e.classification === 'restricted'))
    assert.ok(live.some((e) => e.text.includes('(revision 1)')))

    const dead = await readToEnd(admin, PARTITIONS, [`${applicationId}-dead-letter`])
    assert.deepEqual(
      dead.map((d) => [
        d.key?.toString(),
        d.headers.get(DEAD_LETTER_HEADERS.topic)?.toString(),
        d.headers.get(DEAD_LETTER_HEADERS.code)?.toString(),
      ]),
      [['article-broken', ARTICLES, 'RS_DECODE_FAILED']],
    )
    t.diagnostic(
      `${input.length} input records → ${committed.length} chunk records, ${live.length} live chunks; ${runtime.stats.batches} transactions`,
    )
  },
)
