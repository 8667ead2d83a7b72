// Forgetting per contribution on the real services: the catalog topology (products ⇐ reviews through
// groupBy(…).collect, KafkaRuntime exactly once, Redis stores, registry, Avro chunk events) feeds the
// pgvector sink. A reviewer is forgotten: their reviews vanish from every product document (chunks
// re-emitted without them, none of their text in Postgres, in any Redis key of the app or in any
// internal topic), every product they reviewed stays indexed (one whose only review was theirs too),
// a listed review's place is taken by the next one, and their later reviews never enter.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Producer } from '@platformatic/kafka'
import { buildDeletionRequest } from '../../src/governance/forget/deletion-request.ts'
import { deletionRequestCodec } from '../../src/governance/forget/governance-codecs.ts'
import { catalog, type Review } from '../../topologies/catalog.ts'
import { createSinkEnv, waitForCatchUp } from '../sink/support.ts'
import { caughtUpAndPurged, scanApp } from '../support/physical-scan.ts'
import { testRagServices } from '../support/rag-services.ts'
import { runAppOnStack } from '../support/app-on-stack.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd } from '../support/topic-offsets.ts'

const PARTITIONS = 3
const REVIEWER = 'qx-ann-77'

test(
  "forget per contribution: a reviewer's reviews leave every product document, in Postgres, Redis and internal topics; the products stay indexed",
  { timeout: 240_000 },
  async (t) => {
    const env = await createSinkEnv(t, { dims: 384, partitions: PARTITIONS })
    const chunkTopic = env.config.topic
    const prefix = uniqueName('fcontrib')
    const applicationId = uniqueName('fcontrib-app')
    const deletionsTopic = `${prefix}.governance.deletions`
    const topics = { products: `${prefix}.products`, brands: `${prefix}.brands`, reviews: `${prefix}.reviews` }
    await createTopics(t, [...Object.values(topics), deletionsTopic], PARTITIONS, [
      { name: 'cleanup.policy', value: 'compact' },
    ])
    const services = await testRagServices(t, chunkTopic)
    const processor = catalog({ prefix, applicationId, chunkTopic, deletionsTopic, services }).compile({
      partitions: PARTITIONS,
      sinkPartitions: { [chunkTopic]: PARTITIONS },
    })
    const { admin, redis, events, internal, stop } = await runAppOnStack(t, processor, {
      applicationId,
      instanceId: 'fcontrib',
      subjects: [`${chunkTopic}-audit-value`, `${deletionsTopic}-value`],
      runtime: { repartitionPurgeIntervalMs: 0 }, // purge after every commit, so the scan needs no wait for the interval
      sink: env,
    })
    assert.ok(internal.some((x) => x.name === `${applicationId}-reviews-forget-repartition`))

    const producer = new Producer({
      clientId: uniqueName('fcontrib-feed'),
      bootstrapBrokers: [...endpoints.kafkaBrokers],
    })
    t.after(() => producer.close())
    const json = (topic: string, key: string, value: unknown) => ({
      topic,
      key: Buffer.from(key),
      value: Buffer.from(JSON.stringify(value)),
    })
    const review = (id: string, sku: string, stars: number, text: string, reviewer: string) =>
      json(topics.reviews, id, { id, product_sku: sku, reviewer_id: reviewer, stars, text } satisfies Review)
    await producer.send({
      messages: [
        json(topics.brands, 'b1', { id: 'b1', name: 'Acme' }),
        ...[
          ['k1', 'Kettle'],
          ['k2', 'Toaster'],
          ['k3', 'Grinder'],
        ].map(([sku, name]) => json(topics.products, sku, { sku, name, description: `The ${name}.`, brand_id: 'b1' })),
      ],
    })
    await producer.send({
      messages: [
        // k1: seven reviews, five listed; hers is the best, so the 2-star one is not listed yet.
        review('rq-ann-1', 'k1', 5, 'Zephyrine adores this kettle.', REVIEWER),
        review('rq-o-1', 'k1', 4, 'Quiet.', 'o1'),
        review('rq-o-2', 'k1', 4, 'Fast.', 'o2'),
        review('rq-o-3', 'k1', 3, 'Fine.', 'o3'),
        review('rq-o-4', 'k1', 3, 'Plain.', 'o4'),
        review('rq-o-5', 'k1', 2, 'Handle gets hot.', 'o5'),
        review('rq-o-6', 'k1', 1, 'Leaks.', 'o6'),
        review('rq-ann-2', 'k2', 3, 'Zephyrine likes the crumb tray.', REVIEWER),
        review('rq-o-7', 'k2', 4, 'Even browning.', 'o7'),
        review('rq-ann-3', 'k3', 2, 'Zephyrine found it loud.', REVIEWER), // k3's only review
      ],
    })
    const sources = processor.sourceTopics.filter((s) => !internal.some((x) => x.name === s))
    const repartitions = internal.filter((x) => x.role === 'repartition').map((x) => x.name)
    const caughtUp = async () => {
      await caughtUpAndPurged(admin, PARTITIONS, applicationId, sources, repartitions, events)
      await waitForCatchUp(env.admin, env.config, PARTITIONS, 60_000)
    }
    /** Each product's indexed text in Postgres (its chunks in order), as the superuser sees the table. */
    const indexed = async () => {
      const rows = await env.admin.query<{ entity_key: string; content: string }>(
        `SELECT entity_key, content FROM ${env.config.names.chunkTable} ORDER BY entity_key, chunk_id`,
      )
      const out = new Map<string, string>()
      for (const r of rows.rows) out.set(r.entity_key, (out.get(r.entity_key) ?? '') + r.content)
      return out
    }
    const needles = ['Zephyrine', REVIEWER, 'rq-ann-1', 'rq-ann-2', 'rq-ann-3', 'rq-ann-4']
    const scan = () => scanApp(redis, applicationId, internal, PARTITIONS, needles)

    await caughtUp()
    const before = await indexed()
    assert.deepEqual([...before.keys()], ['k1', 'k2', 'k3'])
    assert.match(before.get('k1')!, /\(7 reviews;.*Zephyrine adores/s)
    assert.doesNotMatch(before.get('k1')!, /Handle gets hot/, 'the 2-star review is not listed yet')
    assert.match(before.get('k3')!, /Zephyrine found it loud/)
    const seen = await scan()
    assert.ok(
      seen.found.some((f) => f.startsWith('redis') && f.endsWith('Zephyrine')),
      `the scan sees Redis: ${seen.found.join('\n')}`,
    )
    assert.ok(
      seen.found.some((f) => f.includes('-changelog') && f.endsWith('rq-ann-1')),
      `the scan sees the changelogs: ${seen.found.join('\n')}`,
    )

    // ragstream forget --subject reviewer:qx-ann-77 (the Avro request it writes, keyed by subject).
    const codec = deletionRequestCodec({ registryUrl: endpoints.schemaRegistryUrl, topic: deletionsTopic })
    await codec.open()
    const request = buildDeletionRequest({
      subject: `reviewer:${REVIEWER}`,
      reason: 'erasure',
      requestedBy: 'dpo',
      requestedAtMs: Date.now(),
    })
    const chunkEnds = await readToEnd(admin, PARTITIONS, [chunkTopic])
    await producer.send({
      messages: [{ topic: deletionsTopic, key: Buffer.from(request.subject), value: codec.encode(request) }],
    })
    await caughtUp()

    const after = await indexed()
    assert.deepEqual([...after.keys()], ['k1', 'k2', 'k3'], 'every product she reviewed stays indexed')
    assert.match(after.get('k1')!, /^Kettle by Acme \(6 reviews;.*★★ Handle gets hot\.$/s, 'the next review is listed')
    assert.match(after.get('k2')!, /^Toaster by Acme \(1 reviews;.*Even browning\.$/s)
    assert.equal(after.get('k3'), 'Grinder by Acme (0 reviews; listed ones average  stars)\n\nThe Grinder.')
    for (const [sku, text] of after) assert.doesNotMatch(text, /Zephyrine/, `${sku} in Postgres`)
    const reemitted = (await readToEnd(admin, PARTITIONS, [chunkTopic])).slice(chunkEnds.length)
    assert.ok(
      reemitted.length > 0 && !reemitted.some((r) => r.value === null),
      'chunks upserted in place, none tombstoned',
    )
    assert.deepEqual((await scan()).found, [], 'after the forget')

    // Her later review, and an update of an old one, never enter; another reviewer's does.
    await producer.send({
      messages: [
        review('rq-ann-4', 'k2', 5, 'Zephyrine is back.', REVIEWER),
        review('rq-ann-1', 'k1', 1, 'Zephyrine changed her mind.', REVIEWER),
        review('rq-o-8', 'k3', 4, 'Grinds evenly.', 'o8'),
      ],
    })
    await caughtUp()
    const later = await indexed()
    assert.match(later.get('k3')!, /\(1 reviews;.*Grinds evenly\.$/s)
    for (const [sku, text] of later) assert.doesNotMatch(text, /Zephyrine/, `${sku} in Postgres, later`)
    assert.deepEqual((await scan()).found, [], 'after her later reviews')
    assert.ok(!events.some((e) => e.event === 'fatal'))
    // The processor ran the whole test without failing, and stops before the teardown deletes its topics.
    await stop()
  },
)
