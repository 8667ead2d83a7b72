// Governance end to end on the real services: the labelled corpus flows through a governed topology
// (KafkaRuntime, exactly once, Redis stores, fake OpenAI embedder with a Redis cache, Avro chunk and
// audit events) into the pgvector sink. Then: no seeded value anywhere; a reclassification leaves the
// analyst view; `ragstream forget --wait` removes a subject from every version, every store and the
// embedding cache with a receipt whose counts equal what was deleted; forget racing updates leaves
// nothing; a replay from earliest into a new version, after the governance topic was compacted,
// brings nothing back.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { chunkEmbedStage, chunkEventEncoder } from '../../src/chunking/chunk-embed-stage.ts'
import { createChunker } from '../../src/chunking/chunker.ts'
import { forgetCommand } from '../../src/cli/commands/forget.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { RedisEmbeddingCache } from '../../src/embedding/cache.ts'
import { Embedder } from '../../src/embedding/embedder.ts'
import { OpenAIProvider } from '../../src/embedding/openai.ts'
import { auditEventOutput, deletionRequestCodec } from '../../src/governance/forget/governance-codecs.ts'
import { hashSubject } from '../../src/governance/subject.ts'
import { redactAtSource, type GovernedDocument } from '../../src/operators/govern/index.ts'
import { defaultTableDecoder } from '../../src/operators/table-source.ts'
import { KafkaRuntime, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { chunkEventAvroCodec } from '../../src/serde/chunk-event-codec.ts'
import { resolveSinkConfig, type SinkConfig } from '../../src/sink/config.ts'
import { grantAnalyst, migrate } from '../../src/sink/migrations.ts'
import { PgvectorSink, type SinkLogEvent } from '../../src/sink/pgvector-sink.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { startFakeOpenAI } from '../embedding/fake-openai.ts'
import { containsToken } from '../fixtures/governance/contains-token.ts'
import { generateLabelledCorpus } from '../fixtures/governance/corpus.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { connect, createRoles, createSinkEnv, roleUrl, waitFor, waitForCatchUp, type SinkEnv } from '../sink/support.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd, waitCaughtUp } from '../support/topic-offsets.ts'
import { deleteKeys } from '../support/local.ts'

const PARTITIONS = 3
const DIMS = 16

interface Customer {
  readonly id: number
  readonly region: string
  readonly classification: string
}
interface Ticket {
  readonly id: string
  readonly customer_id: number
  readonly subject: string
  readonly body: string
}

function p99(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]
}

test(
  'governance e2e: redaction everywhere, reclassification, forget --wait with a receipt, races and replay into a new version',
  { timeout: 280_000 },
  async (t) => {
    const env: SinkEnv = await createSinkEnv(t, { dims: DIMS, partitions: PARTITIONS })
    const n = env.config.names
    const prefix = uniqueName('gov-e2e')
    const topics = { customers: `${prefix}.customers`, tickets: `${prefix}.tickets`, deletions: `${prefix}.deletions` }
    await createTopics(t, [topics.customers, topics.deletions], PARTITIONS, [
      { name: 'cleanup.policy', value: 'compact' },
    ])
    await createTopics(t, [topics.tickets], PARTITIONS)
    const fake = await startFakeOpenAI(t, { dimensions: DIMS })
    const redis = new Redis(endpoints.redisUrl)
    const cachePrefix = uniqueName('rs-gov-emb')
    const cache = new RedisEmbeddingCache(redis, { prefix: cachePrefix })
    const admin = new Admin({ clientId: uniqueName('gov-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    const applications: string[] = []
    const internalTopics: string[] = []
    t.after(async () => {
      await admin.deleteTopics({ topics: internalTopics }).catch(() => {})
      await admin.deleteGroups({ groups: applications }).catch(() => {})
      await admin.close()
      for (const pattern of [`${cachePrefix}:*`, ...applications.map((a) => `rs:{${a}:*`)])
        await deleteKeys(redis, pattern)
      await redis.quit()
    })
    t.after(() => deleteSubject(`${topics.deletions}-value`))
    const logs: unknown[] = []

    /** The governed topology, one runtime and one sink per topology version. */
    const start = async (version: string, config: SinkConfig) => {
      const applicationId = `${prefix}-${version}`
      applications.push(applicationId)
      const chunkCodec = await chunkEventAvroCodec({ registryUrl: endpoints.schemaRegistryUrl, topic: config.topic })
      t.after(() => deleteSubject(`${config.topic}-value`).then(() => deleteSubject(`${config.topic}-audit-value`)))
      const embedder = new Embedder(
        new OpenAIProvider(
          {
            kind: 'openai',
            model: 'text-embedding-test',
            dimensions: DIMS,
            baseUrl: fake.baseUrl,
            apiKeyEnv: 'TEST_EMBEDDINGS_KEY',
            initialBackoffMs: 10,
          },
          { TEST_EMBEDDINGS_KEY: 'test-key' },
        ),
        { cache },
      )
      const chunker = createChunker({ strategy: { kind: 'recursive', size: 300, overlap: 0 } })
      const builder = new TopologyBuilder({ applicationId })
      const customers = builder.table<Customer>(topics.customers, { name: 'customers' })
      builder
        .table<Ticket>(topics.tickets, { name: 'tickets', decode: redactAtSource(defaultTableDecoder) })
        .join(customers, {
          name: 'join-customers',
          type: 'left',
          foreignKey: (t) => String(t.customer_id),
          joiner: (ticket, customer) => ({ ticket, customer }),
        })
        .govern({
          name: 'govern',
          topologyVersion: version,
          policy: {
            name: 'support',
            version: '3',
            classify: (_r, c) => (typeof c.classification === 'string' ? c.classification : 'internal'),
            subjects: (r) => [`customer:${String(r.metadata.customer_id)}`],
          },
          document: ({ ticket }) => ({
            text: ticket.body,
            metadata: { title: ticket.subject, customer_id: ticket.customer_id },
          }),
          joined: ({ customer }) => customer ?? {},
          tenant: () => 'acme',
          forget: {
            deletionsTopic: topics.deletions,
            decode: deletionRequestCodec({ registryUrl: endpoints.schemaRegistryUrl, topic: topics.deletions }),
            entityStores: ['tickets'],
            subjectStores: {
              customers: (s) => s.slice('customer:'.length),
              'join-customers-subscriptions': (s) => s.slice('customer:'.length),
            },
            chunkSets: [{ store: 'chunk-sets', entityType: 'ticket' }],
            embeddingCache: {
              cache,
              namespace: () => embedder.model,
              contentHashes: (doc, key) =>
                chunker
                  .chunk({
                    topology: applicationId,
                    entityType: 'ticket',
                    entityKey: key,
                    text: doc.text,
                    fields: doc as never,
                  })
                  .map((c) => c.contentHash),
            },
          },
          audit: auditEventOutput({ registryUrl: endpoints.schemaRegistryUrl, chunkTopic: config.topic }),
        })
        .stage({
          name: 'chunk-embed',
          kind: 'chunk+embed',
          stores: ['chunk-sets'],
          processor: chunkEmbedStage<GovernedDocument>({
            topology: applicationId,
            version,
            entityType: 'ticket',
            store: 'chunk-sets',
            chunker,
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
        .to(config.topic, { name: 'chunk-events', encode: chunkEventEncoder(chunkCodec) })
      const processor = builder
        .build()
        .compile({ partitions: PARTITIONS, sinkPartitions: { [config.topic]: PARTITIONS } })
      const internal = processor.topics.filter((x) => x.role !== 'source' && x.role !== 'sink')
      // The runtime creates them (ensureTopics) and restores its stores from them straight away.
      internalTopics.push(...internal.map((x) => x.name))
      const backend = new RedisStateBackend({ applicationId, target: { kind: 'single', url: endpoints.redisUrl } })
      t.after(() => backend.close())
      const events: RuntimeEvent[] = []
      const stores = new Map(processor.storeNames.map((name) => [name, backend.store(name)]))
      const runtime = new KafkaRuntime(processor, {
        brokers: endpoints.kafkaBrokers,
        stores,
        instanceId: version,
        sessionTimeoutMs: 6_000,
        transactionTimeoutMs: 30_000,
        batchMaxRecords: 200,
        fetchMaxWaitMs: 50,
        onEvent: (e) => {
          events.push(e)
          logs.push(e)
        },
      })
      const running = runtime.run()
      running.catch(() => {})
      const sink = new PgvectorSink({
        config,
        postgresUrl: env.sinkUrl,
        kafkaBrokers: endpoints.kafkaBrokers,
        schemaRegistryUrl: endpoints.schemaRegistryUrl,
        log: (e: SinkLogEvent) => logs.push(e),
      })
      const sinking = sink.run()
      sinking.catch(() => {})
      t.after(async () => {
        runtime.stop()
        sink.stop()
        await running.catch(() => {})
        await sinking.catch(() => {})
      })
      const repartitions = processor.topics.filter((x) => x.role === 'repartition').map((x) => x.name)
      return {
        applicationId,
        processor,
        async caughtUp() {
          await waitCaughtUp(
            admin,
            PARTITIONS,
            applicationId,
            [topics.customers, topics.tickets, topics.deletions],
            repartitions,
            150_000,
            events,
          )
          await waitForCatchUp(env.admin, config, PARTITIONS, 60_000)
        },
      }
    }

    // ── input: customers, the labelled corpus as tickets (4 customers), 10 small customers to forget
    const corpus = generateLabelledCorpus({ seed: 42 })
    const seeded = corpus.tickets.flatMap((ticket) => ticket.seeded.map((s) => s.value))
    const producer = new Producer({
      clientId: uniqueName('gov-producer'),
      bootstrapBrokers: [...endpoints.kafkaBrokers],
      idempotent: true,
    })
    t.after(() => producer.close())
    const json = (v: unknown) => Buffer.from(JSON.stringify(v))
    const customerIds = [42, 43, 7, 8, ...Array.from({ length: 10 }, (_, i) => 100 + i)]
    const classification = (id: number) => (id === 7 ? 'public' : id === 8 ? 'confidential' : 'internal')
    await producer.send({
      messages: customerIds.map((id) => ({
        topic: topics.customers,
        key: Buffer.from(String(id)),
        value: json({ id, region: 'EU', classification: classification(id) }),
      })),
    })
    const tickets: Ticket[] = corpus.tickets.map((c, i) => ({
      id: c.id,
      customer_id: [42, 43, 7, 8][i % 4],
      subject: `Ticket ${c.id}`,
      body: c.text,
    }))
    for (let i = 0; i < 10; i++)
      for (let j = 0; j < 2; j++)
        tickets.push({
          id: `S-${i}-${j}`,
          customer_id: 100 + i,
          subject: `Small ${i}`,
          body: `A short question number ${j} about invoice ${i}, please call back.`,
        })
    for (let i = 0; i < tickets.length; i += 100) {
      await producer.send({
        messages: tickets
          .slice(i, i + 100)
          .map((ticket) => ({ topic: topics.tickets, key: Buffer.from(ticket.id), value: json(ticket) })),
      })
    }

    const v1 = await start('v1', env.config)
    const loadStarted = Date.now()
    await v1.caughtUp()
    const rowsOf = async (config: SinkConfig, subject: string) =>
      Number(
        (
          await env.admin.query(`SELECT count(*) FROM ${config.names.chunkTable} WHERE subjects @> ARRAY[$1]`, [
            subject,
          ])
        ).rows[0].count,
      )
    const entities = Number(
      (await env.admin.query(`SELECT count(DISTINCT entity_key) FROM ${n.chunkTable}`)).rows[0].count,
    )
    assert.equal(entities, tickets.length, 'every ticket is indexed')
    t.diagnostic(`loaded ${tickets.length} tickets in ${Date.now() - loadStarted} ms`)

    // ── 1. no seeded value anywhere: chunk topic, Postgres content + metadata, Redis, logs, embedder requests
    const places: Record<string, string> = {}
    places['chunk topic'] = (await readToEnd(admin, PARTITIONS, [env.config.topic]))
      .map((r) => r.value?.toString('utf8') ?? '')
      .join('\n')
    places.postgres = (await env.admin.query(`SELECT content, metadata::text AS metadata FROM ${n.chunkTable}`)).rows
      .map((r) => `${r.content}\n${r.metadata}`)
      .join('\n')
    const redisValues: string[] = []
    for (const pattern of [`rs:{${v1.applicationId}:*`]) {
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
        for (const key of keys)
          if ((await redis.type(key)) === 'hash') redisValues.push(JSON.stringify(await redis.hgetall(key)))
        cursor = next
      } while (cursor !== '0')
    }
    places.redis = redisValues.join('\n')
    places.logs = JSON.stringify(logs, (_, v) => (typeof v === 'bigint' ? String(v) : v))
    places['embedder requests'] = fake.requests.map((r) => r.input.join('\n')).join('\n')
    const found: Record<string, number> = {}
    for (const [place, text] of Object.entries(places)) {
      const hits = seeded.filter((value) => containsToken(text, value))
      found[place] = hits.length
      for (const hit of hits)
        t.diagnostic(
          `${place}: ${JSON.stringify(hit)} in …${JSON.stringify(text.slice(Math.max(0, text.indexOf(hit) - 80), text.indexOf(hit) + hit.length + 40))}…`,
        )
    }
    t.diagnostic(`seeded values ${seeded.length}; found: ${JSON.stringify(found)}`)
    assert.deepEqual(found, { 'chunk topic': 0, postgres: 0, redis: 0, logs: 0, 'embedder requests': 0 })
    assert.ok(places.postgres.includes('[EMAIL]') && places['embedder requests'].includes('[CARD]'))

    // ── 2. reclassification: customer 8 → restricted leaves the analyst view that reads ≤ confidential
    const analyst = `rs_an_${env.suffix}`
    await createRoles(t, env.admin, [analyst])
    await grantAnalyst(env.owner, env.config, analyst, {
      classifications: ['public', 'internal', 'confidential'],
      tenants: ['*'],
    })
    const analystClient = await connect(t, roleUrl(analyst))
    const visible = async (subject: string) =>
      Number(
        (await analystClient.query(`SELECT count(*) FROM ${n.view} WHERE subjects @> ARRAY[$1]`, [subject])).rows[0]
          .count,
      )
    assert.ok((await visible('customer:8')) > 0)
    const reclassifiedAt = Date.now()
    await producer.send({
      messages: [
        {
          topic: topics.customers,
          key: Buffer.from('8'),
          value: json({ id: 8, region: 'EU', classification: 'restricted' }),
        },
      ],
    })
    await waitFor('customer 8 to leave the analyst view', async () => (await visible('customer:8')) === 0, 60_000, 50)
    t.diagnostic(`reclassification → gone from the analyst view in ${Date.now() - reclassifiedAt} ms`)
    await assert.rejects(analystClient.query(`SELECT * FROM ${n.auditTable}`), /permission denied/)

    // ── 3. forget --wait: customer 42 (75 tickets of the corpus), then 10 small customers, for the latency
    const before42 = await env.admin.query<{ content_hash: string; entity_key: string }>(
      `SELECT content_hash, entity_key FROM ${n.chunkTable} WHERE subjects @> ARRAY['customer:42']`,
    )
    assert.ok(before42.rowCount! > 0)
    const forget = async (subject: string, requestId?: string) => {
      let out = ''
      const stdout = { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream
      const code = await forgetCommand.run({
        positionals: [],
        values: {
          subject,
          reason: 'erasure request (test)',
          'requested-by': 'dpo@test',
          topology: env.config.topology,
          schema: n.schema,
          processor: v1.applicationId,
          'deletions-topic': topics.deletions,
          wait: true,
          timeout: '90',
          'postgres-url': env.ownerUrl,
          json: true,
          ...(requestId ? { 'request-id': requestId } : {}),
        },
        stdout,
        stderr: process.stderr,
        env: process.env,
      })
      assert.equal(code, 0)
      return JSON.parse(out) as {
        confirmedAt: string
        requestId: string
        subjectHash: string
        chunksTombstoned: number
        rowsDeleted: Record<string, number>
        requestedAtMs: number
        confirmedAtMs: number
        remaining: number
      }
    }
    const receipt = await forget('customer:42', uniqueName('req-42'))
    assert.equal(await rowsOf(env.config, 'customer:42'), 0)
    assert.equal(receipt.subjectHash, hashSubject('customer:42'))
    assert.equal(receipt.remaining, 0)
    assert.equal(receipt.chunksTombstoned, before42.rowCount, 'chunks tombstoned = rows there were')
    assert.equal(
      Object.values(receipt.rowsDeleted).reduce((a, b) => a + b, 0),
      before42.rowCount,
      'rows deleted = rows there were',
    )
    const latencies = [receipt.confirmedAtMs - receipt.requestedAtMs]
    for (let i = 0; i < 10; i++) {
      const r = await forget(`customer:${100 + i}`)
      assert.equal(r.chunksTombstoned, 2)
      assert.equal(await rowsOf(env.config, `customer:${100 + i}`), 0)
      latencies.push(r.confirmedAtMs - r.requestedAtMs)
    }
    t.diagnostic(
      `forget request → receipt: p99 ${p99(latencies)} ms, median ${[...latencies].sort((a, b) => a - b)[Math.floor(latencies.length / 2)]} ms over ${latencies.length} requests`,
    )
    const confirmed = await env.admin.query(
      `SELECT request_id, count(*)::int AS n FROM ${n.auditTable} WHERE kind = 'DELETION_CONFIRMED' GROUP BY request_id`,
    )
    assert.equal(confirmed.rowCount, 11)
    assert.ok(
      confirmed.rows.every((r) => r.n === 1),
      'exactly one receipt per request',
    )
    // Asking again for the same request id: the same receipt, still one row.
    const again = await forget('customer:42', receipt.requestId)
    assert.deepEqual(
      { ...again, deadLettersExpireBy: undefined, deadLettersExpireByMs: undefined },
      {
        ...receipt,
        deadLettersExpireBy: undefined,
        deadLettersExpireByMs: undefined,
        confirmedAt: again.confirmedAt,
        confirmedAtMs: again.confirmedAtMs,
      },
    )
    assert.equal(
      Number(
        (
          await env.admin.query(
            `SELECT count(*) FROM ${n.auditTable} WHERE kind = 'DELETION_CONFIRMED' AND request_id = $1`,
            [receipt.requestId],
          )
        ).rows[0].count,
      ),
      1,
    )

    // 0 keys of the subject in the Redis stores and the embedding cache.
    const hash42 = hashSubject('customer:42')
    const tickets42 = new Set(before42.rows.map((r) => r.entity_key))
    const leftovers: string[] = []
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `rs:{${v1.applicationId}:*`, 'COUNT', 1000)
      for (const key of keys) {
        if ((await redis.type(key)) !== 'hash') continue
        for (const field of await redis.hkeys(key)) {
          const plain =
            field.startsWith('e:') || field.startsWith('s:')
              ? field.slice(2)
              : field.startsWith('ticket:')
                ? field.slice('ticket:'.length)
                : field
          if (plain === hash42 || tickets42.has(plain) || (key.includes(':customers:') && field === '42'))
            leftovers.push(`${key} ${field}`)
        }
      }
      cursor = next
    } while (cursor !== '0')
    assert.deepEqual(
      leftovers.filter((l) => !l.includes('forgotten-subjects')),
      [],
      'no store key of the subject except its suppression record',
    )
    const cached = await Promise.all(
      before42.rows.map((r) => redis.exists(`${cachePrefix}:{text-embedding-test@${DIMS}}:${r.content_hash}`)),
    )
    const cacheKeys = (await redis.keys(`${cachePrefix}:*`)).length
    t.diagnostic(
      `embedding cache: ${cacheKeys} keys left, ${cached.filter(Boolean).length} of customer 42's ${before42.rowCount} chunk hashes`,
    )
    assert.equal(cached.filter(Boolean).length, 0, "the embedding cache holds none of the subject's chunk texts")

    // ── 4. forget racing updates of the same subject (one produce: updates on every partition + the request)
    await producer.send({
      messages: [
        ...tickets
          .filter((x) => x.customer_id === 43)
          .slice(0, 12)
          .map((x) => ({
            topic: topics.tickets,
            key: Buffer.from(x.id),
            value: json({ ...x, body: `${x.body} (edited)` }),
          })),
        {
          topic: topics.customers,
          key: Buffer.from('43'),
          value: json({ id: 43, region: 'EU', classification: 'confidential' }),
        },
        {
          topic: topics.deletions,
          key: Buffer.from('customer:43'),
          value: deletionRequestEncoded(await deletionCodecOpened(topics.deletions), 'customer:43'),
        },
        ...tickets
          .filter((x) => x.customer_id === 43)
          .slice(12, 24)
          .map((x) => ({
            topic: topics.tickets,
            key: Buffer.from(x.id),
            value: json({ ...x, body: `${x.body} (edited again)` }),
          })),
      ],
    })
    await v1.caughtUp()
    assert.equal(await rowsOf(env.config, 'customer:43'), 0, 'forget racing updates leaves 0 rows')

    // ── 5a. the governance topic is compacted before the replay: only the latest request per subject stays.
    // customer:42 was requested twice (asking again above); two more requests, each appended after
    // segment.ms, roll two segments so the older requests become cleanable, and the cleaner (backoff 1 s
    // on the local stack) drops them.
    const requestsFor42 = async () =>
      (await readToEnd(admin, PARTITIONS, [topics.deletions])).filter((r) => r.key?.toString('utf8') === 'customer:42')
    const requested42 = (await requestsFor42()).length
    assert.equal(requested42, 2)
    const set = (name: string, value: string) => ({ name, value, configOperation: 0 as const })
    await admin.incrementalAlterConfigs({
      resources: [
        {
          resourceType: 2,
          resourceName: topics.deletions,
          configs: [
            set('segment.ms', '100'),
            set('min.cleanable.dirty.ratio', '0.001'),
            set('min.compaction.lag.ms', '0'),
          ],
        },
      ],
    })
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, 300))
      await producer.send({
        messages: [
          {
            topic: topics.deletions,
            key: Buffer.from('customer:42'),
            value: deletionRequestEncoded(await deletionCodecOpened(topics.deletions), 'customer:42'),
          },
        ],
      })
    }
    const compacted = await waitFor(
      'the log cleaner to compact the deletions topic',
      async () => {
        const left = await requestsFor42()
        return left.length < requested42 + 2 && left
      },
      90_000,
      500,
    )
    t.diagnostic(
      `deletions topic compacted: ${requested42 + 2} requests for customer:42 → ${compacted.length} (from offset ${compacted[0].offset})`,
    )
    await v1.caughtUp()

    // ── 5. resurrection: replay everything from earliest, over the compacted governance topic, into v2 (new topic, new table): nothing of the forgotten subjects
    const v2config = resolveSinkConfig({
      topology: env.config.topology,
      version: 'v2',
      topic: `${env.config.topic}.v2`,
      dims: DIMS,
      schema: n.schema,
      viewSchema: n.viewSchema,
      ownerRole: n.ownerRole,
      sinkRole: n.sinkRole,
      batchLingerMs: 100,
      sessionTimeoutMs: 6000,
    })
    await createTopics(t, [v2config.topic], PARTITIONS)
    await migrate(env.owner, v2config)
    const v2 = await start('v2', v2config)
    await v2.caughtUp()
    for (const subject of [
      'customer:42',
      'customer:43',
      ...Array.from({ length: 10 }, (_, i) => `customer:${100 + i}`),
    ])
      assert.equal(await rowsOf(v2config, subject), 0, `${subject} in v2`)
    assert.equal(await rowsOf(v2config, 'customer:7'), await rowsOf(env.config, 'customer:7'))
    // The suppression records in the changelog are values, never null: compaction keeps them.
    const suppressions = await readToEnd(admin, PARTITIONS, [`${v1.applicationId}-govern-forgotten-subjects-changelog`])
    assert.ok(suppressions.length >= 12 * PARTITIONS && suppressions.every((r) => r.value !== null))
  },
)

let deletionCodec: ReturnType<typeof deletionRequestCodec> | undefined
async function deletionCodecOpened(topic: string) {
  deletionCodec ??= deletionRequestCodec({ registryUrl: endpoints.schemaRegistryUrl, topic })
  await deletionCodec.open()
  return deletionCodec
}
function deletionRequestEncoded(codec: ReturnType<typeof deletionRequestCodec>, subject: string): Buffer {
  return codec.encode({
    request_id: uniqueName('req-race'),
    subject,
    reason: 'race',
    requested_by: 'test',
    requested_at_ms: Date.now(),
    mode: 'FOREVER',
  })
}
