// support-copilot end to end on the real services: `ragstream generate` backfills fresh topics, the
// Kafka runtime runs the topology exactly once (Redis state stores) until it has caught up, and the
// committed chunk topic is then (a) decoded by an independent registry client, governed (the seeded
// e-mail addresses and phone numbers are masked), (b) equal, per chunk id, to what the test driver
// makes of the same input records, (c) read by the stock Kafka console consumer, and (d) the
// generator's malformed records are in the dead-letter topic with headers naming their source topic,
// partition and offset. Audit events share the chunk topic (the sink writes them as audit rows).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { checkKafka } from '../../src/config/services.ts'
import { generate, generatorTopics } from '../../src/generator/generator.ts'
import type { SourceRecord } from '../../src/runtime/task.ts'
import type { ChunkEvent } from '../../src/serde/chunk-event.ts'
import { SUPPORT_REGIONS } from '../../topologies/support-copilot.ts'
import { TopologyTestDriver } from '../../src/testing/index.ts'
import { DEAD_LETTER_HEADERS } from '../../src/topology/compile.ts'
import { supportCopilot } from '../../topologies/support-copilot.ts'
import { decodeChunkEvents, testRagServices } from '../support/rag-services.ts'
import { runAppOnStack } from '../support/app-on-stack.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { readToEnd, waitCaughtUp } from '../support/topic-offsets.ts'

const PARTITIONS = 3
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const KAFKA_LIB = `${process.env.RAGSTREAM_STACK_DIR ?? `${ROOT}.stack`}/kafka/lib-${process.env.RAGSTREAM_KAFKA_VERSION ?? '4.1.1'}`

/** A Debezium table's rows after every well-formed change of `topic` (malformed records skipped), by id. */
function finalRows(records: readonly SourceRecord[], topic: string): Map<string, Record<string, unknown>> {
  const rows = new Map<string, Record<string, unknown>>()
  for (const r of records) {
    if (r.topic !== topic || r.value === null) continue
    let change: { op?: string; after?: Record<string, unknown> | null }
    try {
      change = JSON.parse(r.value.toString()) as typeof change
    } catch {
      continue
    }
    const id = String((JSON.parse(r.key!.toString()) as { id: number }).id)
    if (change.op === 'd') rows.delete(id)
    else if (change.op !== undefined && change.after) rows.set(id, change.after)
  }
  return rows
}

/** The stock Kafka console consumer (read_committed), printing partition and key per record. */
function consoleConsumer(
  topic: string,
  group: string,
  maxMessages: number,
): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'java',
      [
        '-Xmx256m',
        '-cp',
        `${KAFKA_LIB}/*`,
        'org.apache.kafka.tools.consumer.ConsoleConsumer',
        '--bootstrap-server',
        endpoints.kafkaBrokers.join(','),
        '--topic',
        topic,
        '--from-beginning',
        '--isolation-level',
        'read_committed',
        '--max-messages',
        String(maxMessages),
        '--timeout-ms',
        '20000',
        '--group',
        group,
        '--property',
        'print.partition=true',
        '--property',
        'print.key=true',
        '--property',
        'print.value=false',
        '--property',
        'key.separator=|',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.once('error', reject)
    child.once('exit', (code) => resolve({ code, lines: stdout.split('\n').filter(Boolean), stderr }))
  })
}

/** Audit events ride the chunk topic beside the chunk events (keyed by event id). */
const isAudit = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && 'event_id' in value && 'kind' in value

/**
 * What two correct runs of the same input must agree on: everything but when a chunk was emitted and
 * which version of its ticket first produced it. An unchanged chunk is not re-emitted, and a join
 * answer for a ticket version that was superseded before the answer arrived is dropped (KIP-213), so
 * which version first produced a chunk depends on batching; the runtime's lineage is checked apart.
 */
function comparable(event: ChunkEvent | null): unknown {
  if (event === null) return null
  const {
    emitted_at_ms: _emitted,
    source_offset: _offset,
    source_position: _position,
    source_timestamp_ms: _timestamp,
    // Which change made the last emitted version (the ticket's own or its customer's) depends on how
    // the two topics interleave; the test checks that it names an input record instead.
    change: _change,
    ...lineage
  } = event.lineage
  return { ...event, embedding: Array.from(event.embedding), lineage }
}

/** The fields (dotted paths) where two chunk events differ, with both values. */
function fieldDiff(expected: unknown, actual: unknown, path = ''): Record<string, unknown> {
  if (expected === null || actual === null || typeof expected !== 'object' || typeof actual !== 'object') {
    return JSON.stringify(expected) === JSON.stringify(actual) ? {} : { [path || '(value)']: { expected, actual } }
  }
  const out: Record<string, unknown> = {}
  for (const k of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    if (k === 'embedding') continue
    Object.assign(
      out,
      fieldDiff(
        (expected as Record<string, unknown>)[k],
        (actual as Record<string, unknown>)[k],
        path ? `${path}.${k}` : k,
      ),
    )
  }
  if (Object.keys(out).length === 0 && JSON.stringify(expected) !== JSON.stringify(actual))
    out[path ? `${path}.embedding` : 'embedding'] = 'differs'
  return out
}

test(
  "support-copilot e2e: generated CDC → KafkaRuntime (exactly once) → committed Avro chunk events equal to the test driver's, readable by stock tools; malformed input in the DLQ",
  { timeout: 110_000 },
  async (t) => {
    await checkKafka(endpoints)
    const prefix = uniqueName('e2e-sc')
    const applicationId = uniqueName('support-copilot-e2e')
    const chunkTopic = uniqueName('rag.chunks.support-copilot-e2e')
    const sources = generatorTopics(prefix)
    const deletionsTopic = `${prefix}.governance.deletions`
    const consoleGroup = uniqueName('e2e-console')
    await createTopics(t, [chunkTopic], PARTITIONS)

    // 1. The Kafka runtime, exactly once, Redis state stores, started on fresh (empty, compacted) topics.
    await createTopics(t, [...sources, deletionsTopic], PARTITIONS, [{ name: 'cleanup.policy', value: 'compact' }])
    const services = await testRagServices(t, chunkTopic)
    const processor = supportCopilot({ prefix, applicationId, chunkTopic, deletionsTopic, services }).compile({
      partitions: PARTITIONS,
      sinkPartitions: { [chunkTopic]: PARTITIONS },
    })
    const started = Date.now()
    const { admin, runtime, events, stop } = await runAppOnStack(t, processor, {
      applicationId,
      instanceId: 'e2e',
      subjects: [`${chunkTopic}-audit-value`, `${deletionsTopic}-value`],
      groups: [consoleGroup],
      runtime: { transactionTimeoutMs: 30_000, batchMaxRecords: 100 },
    })

    const deadline = Date.now() + 20_000
    while (!events.some((e) => e.event === 'assigned')) {
      assert.ok(Date.now() < deadline, `no assignment: ${JSON.stringify(events)}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }

    // 2. `ragstream generate` while it runs: a snapshot of 300 tickets, then 200 live changes over 2 s (~5% malformed).
    // The live changes start once the snapshot is processed, so the tickets they delete were indexed
    // (on a loaded machine the processor could otherwise read a ticket's delete before its join's
    // response, index nothing and leave nothing to tombstone).
    const repartitions = processor.topics.filter((x) => x.role === 'repartition').map((x) => x.name)
    const generated = await generate({
      afterBackfill: () => waitCaughtUp(admin, PARTITIONS, applicationId, sources, repartitions, 60_000, events),
      brokers: endpoints.kafkaBrokers,
      seed: 7,
      server: prefix,
      withSchema: false,
      backfill: 300,
      rate: 100,
      changes: 200,
      malformedRate: 0.05,
    })
    assert.ok(generated.malformed > 0, 'the generator wrote malformed records')
    const input = await readToEnd(admin, PARTITIONS, sources)
    assert.equal(input.length, generated.records)

    await waitCaughtUp(admin, PARTITIONS, applicationId, sources, repartitions, 60_000, events)
    const caughtUpMs = Date.now() - started
    await stop()

    // (a) The committed chunk topic, decoded by an independent registry client.
    const committed = await readToEnd(admin, PARTITIONS, [chunkTopic])
    const decoded = await decodeChunkEvents(committed.map((r) => r.value))
    const table = new Map<string, ChunkEvent | null>()
    let audits = 0
    committed.forEach((r, i) => (isAudit(decoded[i]) ? audits++ : table.set(r.key!.toString(), decoded[i])))
    const live = [...table].filter(([, e]) => e !== null) as [string, ChunkEvent][]
    assert.ok(audits > 0, 'audit events (denials, reclassifications) on the chunk topic')
    assert.ok(
      committed.some((r) => r.value === null),
      'deleted tickets left tombstones',
    )
    assert.ok(committed.length - audits > table.size, 'changed tickets and customers re-emitted chunks')
    assert.ok(
      live.length > generated.byKind['ticket:r'],
      `${live.length} chunks for ${generated.byKind['ticket:r']} tickets`,
    )
    for (const [key, event] of live) {
      assert.equal(event.chunk_id, key)
      assert.equal(event.entity_type, 'ticket')
      assert.equal(event.embedding.length, 384)
      assert.equal(event.lineage.source_topic, `${prefix}.public.tickets`)
      assert.equal(event.lineage.embedding_model, 'hashing:v1@384')
      assert.equal(event.policy_version, 'support-copilot@2')
      assert.doesNotMatch(
        event.text,
        /[\w.+-]+@[\w-]+(\.[\w-]+)*\.[a-z]{2,}/i,
        `an e-mail address in chunk ${event.chunk_id}`,
      )
    }
    const texts = live.map(([, e]) => e.text).join('\n')
    for (const mask of ['[EMAIL]', '[PHONE]'])
      assert.ok(texts.includes(mask), `the generator's seeded ${mask} values are masked`)
    // Lineage names a real record of the chunk's ticket: the Debezium change at that topic, partition and offset.
    const inputAt = new Map(input.map((r) => [`${r.topic}:${r.partition}:${r.offset}`, r]))
    for (const [, event] of live) {
      const source = inputAt.get(
        `${event.lineage.source_topic}:${event.lineage.source_partition}:${event.lineage.source_offset}`,
      )
      assert.ok(source, `lineage of ${event.chunk_id} names no input record`)
      assert.equal(JSON.parse(source.key!.toString()).id, Number(event.entity_key))
    }
    // An oracle independent of the driver: the final tables replayed from the input. Every live ticket
    // whose customer exists in a known region has chunks (the policy denies the others), no deleted one
    // does, and each chunk carries its customer's final classification, tenant, region and subject
    // (reclassifications and region moves reached every derived chunk).
    const tickets = finalRows(input, `${prefix}.public.tickets`)
    const customers = finalRows(input, `${prefix}.public.customers`)
    const customerOf = (ticket: string) => customers.get(String(tickets.get(ticket)?.customer_id))
    const governed = [...tickets.keys()].filter((id) =>
      (SUPPORT_REGIONS as readonly unknown[]).includes(customerOf(id)?.region),
    )
    assert.ok(
      governed.length > tickets.size / 2,
      `${governed.length} of ${tickets.size} tickets have a customer in a known region`,
    )
    assert.deepEqual(new Set(live.map(([, e]) => e.entity_key)), new Set(governed))
    for (const [, event] of live) {
      const customer = customerOf(event.entity_key)
      assert.deepEqual(
        [event.classification, event.tenant, event.region, event.subjects],
        [
          customer?.classification,
          customer?.tenant,
          customer?.region,
          [`customer:${String(tickets.get(event.entity_key)?.customer_id)}`],
        ],
        `chunk ${event.chunk_id} of ticket ${event.entity_key}`,
      )
    }
    // Each version names the change that made it: a record of the input (the ticket's or a joined row's).
    const inputPositions = new Set(input.map((r) => `${r.topic}/${r.partition}/${r.offset}`))
    for (const [key, event] of live) {
      const change = event.lineage.change
      assert.ok(change, `chunk ${key} names the change that made it`)
      assert.ok(
        inputPositions.has(`${change.topic}/${change.partition}/${change.offset}`),
        `chunk ${key}: its change ${JSON.stringify(change)} is an input record`,
      )
    }
    // One entity, one partition: every chunk of a ticket is on the same partition.
    const partitionOf = new Map<string, Set<number>>()
    committed.forEach((r, i) => {
      const entity = decoded[i]?.entity_key
      if (entity !== undefined) partitionOf.set(entity, (partitionOf.get(entity) ?? new Set()).add(r.partition))
    })
    for (const [entity, partitions] of partitionOf)
      assert.equal(partitions.size, 1, `ticket ${entity} on partitions ${[...partitions]}`)

    // (b) The test driver, fed the same records at the same partitions and offsets, ends with the same chunk table.
    const driver = new TopologyTestDriver(
      supportCopilot({ prefix, applicationId, chunkTopic, deletionsTopic, services }),
      { partitions: PARTITIONS, services },
    )
    t.after(() => driver.close())
    const ordered = [...input].sort(
      (x, y) =>
        Number(x.timestamp - y.timestamp) ||
        (x.topic === y.topic ? x.partition - y.partition || Number(x.offset - y.offset) : x.topic < y.topic ? -1 : 1),
    )
    for (let i = 0; i < ordered.length; i += 100) {
      await driver.pipeBatch(
        ordered
          .slice(i, i + 100)
          .map((r) => ({ topic: r.topic, key: r.key, value: r.value, partition: r.partition, timestamp: r.timestamp })),
      )
    }
    const expected = new Map<string, unknown>()
    const driverRecords = driver.readOutput(chunkTopic)
    const driverDecoded = await decodeChunkEvents(driverRecords.map((r) => r.rawValue))
    driverRecords.forEach(
      (r, i) => void (isAudit(driverDecoded[i]) || expected.set(r.key!, comparable(driverDecoded[i]))),
    )
    const actual = new Map([...table].map(([k, e]) => [k, comparable(e)]))
    // A tombstone and a chunk id never emitted are the same: no row (batching decides whether a short-lived chunk was ever emitted).
    const differing = [...new Set([...expected.keys(), ...actual.keys()])].filter(
      (k) => JSON.stringify(expected.get(k) ?? null) !== JSON.stringify(actual.get(k) ?? null),
    )
    assert.deepEqual(
      differing.slice(0, 5).map((k) => ({ chunk: k, fields: fieldDiff(expected.get(k), actual.get(k)) })),
      [],
      `${differing.length} of ${expected.size} chunks differ`,
    )
    assert.equal(
      [...actual.values()].filter((e) => e !== null).length,
      [...expected.values()].filter((e) => e !== null).length,
    )

    // (c) The stock console consumer reads the same committed records.
    const consoleRead = await consoleConsumer(chunkTopic, consoleGroup, committed.length)
    assert.equal(consoleRead.code, 0, consoleRead.stderr)
    assert.deepEqual(
      consoleRead.lines.map((l) => l.replace(/^Partition:/, '')).sort(),
      committed.map((r) => `${r.partition}|${r.key!.toString()}`).sort(),
    )

    // (d) Every malformed record is in the dead-letter topic, with its source position, and nothing else is.
    const dead = await readToEnd(admin, PARTITIONS, [`${applicationId}-dead-letter`])
    const header = (r: SourceRecord, name: string): string | undefined => r.headers.get(name)?.toString()
    assert.equal(dead.length, generated.malformed)
    for (const d of dead) {
      const source = inputAt.get(
        `${header(d, DEAD_LETTER_HEADERS.topic)}:${header(d, DEAD_LETTER_HEADERS.partition)}:${header(d, DEAD_LETTER_HEADERS.offset)}`,
      )
      assert.ok(
        source,
        `dead letter names an input record: ${JSON.stringify(Object.fromEntries([...d.headers].map(([k, v]) => [k, v.toString()])))}`,
      )
      assert.equal(header(d, DEAD_LETTER_HEADERS.code), 'RS_DECODE_FAILED')
      assert.equal(header(d, DEAD_LETTER_HEADERS.application), applicationId)
      assert.deepEqual(d.value, source.value)
      assert.equal(d.partition, source.partition)
    }
    assert.deepEqual(
      dead
        .map(
          (d) =>
            `${header(d, DEAD_LETTER_HEADERS.topic)}:${header(d, DEAD_LETTER_HEADERS.partition)}:${header(d, DEAD_LETTER_HEADERS.offset)}`,
        )
        .sort(),
      driver
        .readDeadLetters()
        .map(
          (d) =>
            `${d.headers[DEAD_LETTER_HEADERS.topic]}:${d.headers[DEAD_LETTER_HEADERS.partition]}:${d.headers[DEAD_LETTER_HEADERS.offset]}`,
        )
        .sort(),
    )
    t.diagnostic(
      `${generated.records} input records (${generated.malformed} malformed) → ${committed.length} chunk records, ${live.length} live chunks; caught up in ${caughtUpMs} ms; ${runtime.stats.batches} transactions, ${runtime.stats.aborts} aborted`,
    )
  },
)
