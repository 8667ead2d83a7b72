// Hostile input to a running processor (support-copilot, exactly once) and sink: CDC records of the
// kinds a careless or hostile writer produces — 400 KB of invalid UTF-8, tickets just and well under
// the output limit, just over it and three times over it (its state-store changelog record alone is
// too large), a 100 KB key, a wrong magic byte, an unknown schema id. Each ends in the
// dead-letter topic (naming its source position) or in sink_rejects, or is indexed; nothing stalls:
// the next good ticket is indexed within seconds; the process's memory stays bounded.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Producer } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { generate, generatorTopics } from '../../src/generator/generator.ts'
import { encodeChange } from '../../src/generator/debezium-envelope.ts'
import { supportTables } from '../../src/generator/support-dataset.ts'
import { DEAD_LETTER_HEADERS } from '../../src/runtime/dead-letter.ts'
import { supportCopilot } from '../../topologies/support-copilot.ts'
import { testRagServices } from '../support/rag-services.ts'
import { runAppOnStack } from '../support/app-on-stack.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd } from '../support/topic-offsets.ts'
import { createSinkEnv, waitFor } from '../sink/support.ts'

const PARTITIONS = 2
const MAX_RECORD_BYTES = 200_000

test(
  'hostile input: every bad record is dead-lettered or rejected with its context, the next good ticket is indexed within seconds, memory stays bounded',
  { timeout: 240_000 },
  async (t) => {
    await checkKafka(endpoints)
    const env = await createSinkEnv(t, { dims: 384, partitions: PARTITIONS, topic: uniqueName('rag.chunks.hostile') })
    const chunkTopic = env.config.topic
    const prefix = uniqueName('hostile')
    const applicationId = uniqueName('hostile-sc')
    const sources = generatorTopics(prefix)
    const deletionsTopic = `${prefix}.governance.deletions`
    await createTopics(t, [...sources, deletionsTopic], PARTITIONS, [{ name: 'cleanup.policy', value: 'compact' }])
    const services = await testRagServices(t, chunkTopic)
    const processor = supportCopilot({ prefix, applicationId, chunkTopic, deletionsTopic, services }).compile({
      partitions: PARTITIONS,
      sinkPartitions: { [chunkTopic]: PARTITIONS },
    })
    const { admin, events } = await runAppOnStack(t, processor, {
      applicationId,
      instanceId: 'hostile',
      subjects: [`${chunkTopic}-audit-value`, `${deletionsTopic}-value`],
      runtime: { transactionTimeoutMs: 30_000, batchMaxRecords: 100, maxRecordBytes: MAX_RECORD_BYTES },
      sink: env,
    })
    const rows = async (where = 'true', values: unknown[] = []): Promise<number> =>
      (await env.admin.query(`SELECT count(*)::int AS n FROM ${env.config.names.chunkTable} WHERE ${where}`, values))
        .rows[0].n

    // Customers, products and a few tickets first, so good tickets have someone to join.
    await generate({
      brokers: endpoints.kafkaBrokers,
      seed: 3,
      server: prefix,
      withSchema: false,
      backfill: 10,
      rate: 0,
    })
    await waitFor('the backfill to be indexed', async () => (await rows()) > 0, 90_000, 500)

    const { tickets } = supportTables(prefix)
    const topic = `${prefix}.public.tickets`
    const change = (id: number | string, body: string) =>
      encodeChange(
        tickets,
        {
          op: 'c',
          before: null,
          after: {
            id: id as number,
            customer_id: 1,
            product_sku: null,
            subject: `hostile ${String(id).slice(0, 20)}`,
            body,
            status: 'open',
            priority: 1,
            updated_at: Date.now(),
          },
        },
        { withSchema: false, tsMs: Date.now(), lsn: 1, txId: 1 },
      )[0]
    const valid = change(910_000, 'x')
    const invalidUtf8 = (() => {
      const text = change(910_001, 'BODY').value!.toString()
      const at = text.indexOf('BODY')
      return Buffer.concat([
        Buffer.from(text.slice(0, at)),
        Buffer.alloc(400_000, 0xff),
        Buffer.from(text.slice(at + 4)),
      ])
    })()
    const words = (bytes: number): string => 'lorem ipsum dolor sit amet '.repeat(Math.ceil(bytes / 27)).slice(0, bytes)
    const hostile: { kind: string; key: Buffer; value: Buffer }[] = [
      {
        kind: 'invalid UTF-8 (400 KB, grows ~3x if decoded leniently)',
        key: change(910_001, '').key,
        value: invalidUtf8,
      },
      { kind: 'just under the output limit', ...change(910_003, words(MAX_RECORD_BYTES - 700)) } as never,
      { kind: 'well under the output limit', ...change(910_004, words(MAX_RECORD_BYTES / 8)) } as never,
      { kind: 'just over the output limit', ...change(910_006, words(MAX_RECORD_BYTES + 700)) } as never,
      { kind: 'three times the output limit', ...change(910_007, words(3 * MAX_RECORD_BYTES)) } as never,
      {
        kind: '100 KB key',
        key: Buffer.from(JSON.stringify({ id: '9'.repeat(100_000) })),
        value: change(910_005, 'k').value!,
      },
      {
        kind: 'wrong magic byte',
        key: valid.key,
        value: Buffer.concat([Buffer.from([0x01, 0, 0, 0, 1]), valid.value!]),
      },
      {
        kind: 'unknown schema id',
        key: valid.key,
        value: Buffer.concat([Buffer.from([0x00, 0x77, 0x35, 0x94, 0x00]), valid.value!]),
      },
    ]
    const producer = new Producer({
      clientId: uniqueName('hostile-producer'),
      bootstrapBrokers: [...endpoints.kafkaBrokers],
    })
    t.after(() => producer.close())
    const positions: { kind: string; partition: number; offset: bigint }[] = []
    for (const h of hostile) {
      const sent = await producer.send({ messages: [{ topic, key: h.key, value: h.value, partition: 0 }] })
      positions.push({ kind: h.kind, partition: 0, offset: BigInt(sent.offsets![0].offset) })
    }
    const good = change(910_100, 'GOODTICKET after the storm: the refund for the damaged parcel arrived')
    const goodAt = Date.now()
    await producer.send({ messages: [{ topic, key: good.key, value: good.value!, partition: 0 }] })
    await waitFor(
      'the good ticket after the hostile ones',
      async () => (await rows(`content LIKE '%GOODTICKET%'`)) > 0,
      60_000,
      100,
    ).catch((error: Error) => {
      const seen = events.slice(-8)
      throw new Error(
        `${error.message}; runtime events ${JSON.stringify(seen, (_, v) => (typeof v === 'bigint' ? String(v) : v)).slice(0, 3000)}`,
      )
    })
    const indexedAfter = Date.now() - goodAt
    t.diagnostic(
      `good ticket indexed ${indexedAfter} ms after it was produced, behind ${hostile.length} hostile records`,
    )
    assert.ok(indexedAfter < 15_000, `indexed within seconds (${indexedAfter} ms)`)

    // Where each hostile record went.
    const dead = await readToEnd(admin, PARTITIONS, [`${applicationId}-dead-letter`])
    const header = (r: (typeof dead)[number], name: string) => r.headers.get(name)?.toString()
    const rejects = await env.admin.query<{ message: string }>(`SELECT message FROM ${env.config.names.rejectsTable}`)
    const report: string[] = []
    for (const p of positions) {
      const letter = dead.find(
        (r) =>
          header(r, DEAD_LETTER_HEADERS.topic) === topic && header(r, DEAD_LETTER_HEADERS.offset) === String(p.offset),
      )
      const id = /910\d{3}|9{20}/.exec(hostile[positions.indexOf(p)].key.toString().slice(0, 100))?.[0] ?? ''
      const indexed = id !== '' && (await rows(`entity_key LIKE $1`, [`%${id}%`])) > 0
      const rejected =
        p.kind === '100 KB key' && rejects.rows.some((r) => /bytes, the sink indexes at most/.test(r.message))
      const where = letter
        ? `dead-lettered ${header(letter, DEAD_LETTER_HEADERS.code)}`
        : rejected
          ? 'sink_rejects'
          : indexed
            ? 'indexed'
            : 'NOWHERE'
      report.push(`${p.kind}: ${where}`)
      if (letter) {
        assert.equal(header(letter, DEAD_LETTER_HEADERS.partition), String(p.partition))
        assert.ok(header(letter, DEAD_LETTER_HEADERS.message), `${p.kind}: the dead letter says why`)
        assert.ok((letter.value?.length ?? 0) <= 2 * MAX_RECORD_BYTES, `${p.kind}: the dead letter is bounded`)
      }
    }
    t.diagnostic(report.join('; '))
    assert.ok(!report.some((r) => r.endsWith('NOWHERE')), report.join('\n'))
    for (const kind of [
      'invalid UTF-8',
      'wrong magic byte',
      'unknown schema id',
      'just over the output limit',
      'three times the output limit',
    ])
      assert.ok(
        report.find((r) => r.startsWith(kind))?.includes('dead-lettered'),
        `${kind} is dead-lettered: ${report.join('; ')}`,
      )
    const rss = process.memoryUsage().rss / 1024 / 1024
    t.diagnostic(`RSS of the processor + sink process: ${rss.toFixed(0)} MB`)
    assert.ok(rss < 1500, `memory bounded (${rss.toFixed(0)} MB)`)
    assert.ok(!events.some((e) => e.event === 'fatal'), 'the processor never stopped')
  },
)
