// Fetch fairness across assigned partitions (issue 19): with a backlog on every partition, one
// instance interleaves them instead of draining one partition after another. Shown by the order of
// partitions in batches (never by timing), for the reader alone and for the runtime's batches.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Consumer, Producer } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { KafkaRuntime } from '../../src/runtime/kafka-runtime.ts'
import { PartitionReader } from '../../src/runtime/partition-reader.ts'
import type { ProcessorTopology } from '../../src/runtime/task.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { runStopped, until } from '../support/runtime-waits.ts'

const PARTITIONS = 3
const VALUE = Buffer.alloc(1000, 'x')

/**
 * `perPartition` records of 1 kB on each partition, written `perSend` at a time (one record batch per
 * partition and send), so the backlog of every partition is larger than a whole fetch response.
 */
async function backlog(t: { after: (fn: () => Promise<void>) => void }, perPartition: number, perSend: number) {
  const topic = uniqueName('fair-in')
  await createTopics(t, [topic], PARTITIONS)
  const producer = new Producer({ clientId: uniqueName('fair-gen'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  try {
    for (let sent = 0; sent < perPartition; sent += perSend) {
      const messages = []
      for (let p = 0; p < PARTITIONS; p++)
        for (let i = sent; i < Math.min(perPartition, sent + perSend); i++)
          messages.push({ topic, partition: p, key: Buffer.from(`k${p}-${i}`), value: VALUE })
      await producer.send({ messages })
    }
  } finally {
    await producer.close()
  }
  return topic
}

/** Reads everything with `PartitionReader`; returns the partitions of each non-empty batch, in order. */
async function readBatches(topic: string, total: number, fetchMaxBytes: number, maxRecords: number, maxBytes: number) {
  const consumer = new Consumer({
    groupId: uniqueName('fair-read'),
    clientId: uniqueName('fair-read'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
  })
  const reader = new PartitionReader(consumer, { fetchMaxBytes, fetchMaxWaitMs: 100 })
  const batches: number[][] = []
  try {
    await reader.assign(Array.from({ length: PARTITIONS }, (_, partition) => ({ topic, partition, offset: 0n })))
    let read = 0
    for (let guard = 0; read < total && guard < 10_000; guard++) {
      const batch = await reader.nextBatch(maxRecords, maxBytes)
      if (batch.records.length === 0) continue
      read += batch.records.length
      batches.push(batch.records.map((r) => r.partition))
    }
    assert.equal(read, total, 'every record read once')
  } finally {
    await consumer.close(true)
  }
  return batches
}

/** How many records of each partition were handed out up to the batch that finished the first partition, and that batch's index. */
function readWhenFirstFinished(batches: readonly number[][], perPartition: number): { seen: number[]; at: number } {
  const seen = new Array<number>(PARTITIONS).fill(0)
  for (const [at, batch] of batches.entries()) {
    for (const p of batch) seen[p]++
    if (seen.some((n) => n >= perPartition)) return { seen, at }
  }
  return { seen, at: batches.length }
}

test('reader: a backlog on every partition is read interleaved — every batch holds every partition until one runs out, and none is drained first', async (t) => {
  await checkKafka(endpoints)
  const perPartition = 300
  // 10 records (10 kB) per record batch; a fetch response of 48 kB is smaller than any partition's backlog.
  const topic = await backlog(t, perPartition, 10)
  const batches = await readBatches(topic, perPartition * PARTITIONS, 48 * 1024, 60, 48 * 1024)

  const firstEnd = readWhenFirstFinished(batches, perPartition)
  // The batch that finishes a partition may lack one that had its share in the fetch before.
  const whileAllHaveBacklog = batches.slice(0, firstEnd.at)
  assert.ok(whileAllHaveBacklog.length >= 5, `batches before a partition ran out: ${whileAllHaveBacklog.length}`)
  for (const [i, batch] of whileAllHaveBacklog.entries())
    assert.deepEqual(
      [...new Set(batch)].sort(),
      [0, 1, 2],
      `batch ${i} holds partitions ${[...new Set(batch)].join(',')}; first batches: ${batches
        .slice(0, 3)
        .map((b) => [...new Set(b)].join('+'))
        .join(' | ')}`,
    )
  // Within a batch a partition's records stay together, in the reader's order.
  for (const batch of batches) {
    const runs = batch.filter((p, i) => i === 0 || batch[i - 1] !== p)
    assert.equal(runs.length, new Set(batch).size, `partitions interleaved record by record in ${runs.join(',')}`)
  }
  for (const n of firstEnd.seen)
    assert.ok(n >= perPartition / 2, `read per partition when the first ran out: ${firstEnd.seen}`)
})

test('reader: record batches larger than a partition’s share of the fetch — the partitions take turns, least recently served first', async (t) => {
  await checkKafka(endpoints)
  const perPartition = 400
  // 100 kB record batches against a 48 kB response: the broker returns one whole batch, to the first
  // partition of the request that has data, so the request order alone decides who gets served.
  const topic = await backlog(t, perPartition, 100)
  // Batches bounded by records only here, so one batch is one fetch.
  const batches = await readBatches(topic, perPartition * PARTITIONS, 48 * 1024, 1000, 1024 * 1024)

  // Each fetch brings one partition's 100-record batch: the partition sequence of the batches.
  const turns = batches.map((b) => b[0])
  assert.ok(
    batches.every((b) => new Set(b).size === 1),
    'one partition per fetch (the batch is larger than the response)',
  )
  assert.equal(turns.length, (perPartition / 100) * PARTITIONS, `turns: ${turns.join(',')}`)
  // Round-robin: within each window of PARTITIONS turns every partition appears once.
  for (let i = 0; i + PARTITIONS <= turns.length; i += PARTITIONS)
    assert.deepEqual(
      [...turns.slice(i, i + PARTITIONS)].sort(),
      [0, 1, 2],
      `turns ${turns.join(',')} (a partition served twice before another once)`,
    )
})

test('runtime: one instance with a backlog on every partition processes them interleaved in its batches', async (t) => {
  await checkKafka(endpoints)
  const perPartition = 300
  const topic = await backlog(t, perPartition, 10)
  const applicationId = uniqueName('fair-app')
  const batches: number[][] = []
  const topology: ProcessorTopology = {
    applicationId,
    sourceTopics: [topic],
    topics: [{ name: topic, role: 'source', config: {} }],
    storeNames: [],
    prefetchKeys: () => new Map(),
    process: async (records) => {
      batches.push(records.map((r) => r.partition))
      return []
    },
  }
  const runtime = new KafkaRuntime(topology, {
    brokers: endpoints.kafkaBrokers,
    stores: new Map(),
    batchMaxRecords: 60,
    batchMaxBytes: 48 * 1024,
    fetchMaxWaitMs: 100,
    sessionTimeoutMs: 6_000,
    purgeRepartitionTopics: false,
  })
  void runStopped(t, runtime, 'the runtime')
  const processed = () => batches.reduce((n, b) => n + b.length, 0)
  await until('every record processed', () => processed() >= perPartition * PARTITIONS, 120_000)

  const { seen } = readWhenFirstFinished(batches, perPartition)
  for (const n of seen) assert.ok(n >= perPartition / 2, `processed per partition when the first ran out: ${seen}`)
  const mixed = batches.filter((b) => new Set(b).size === PARTITIONS).length
  assert.ok(mixed >= batches.length / 2, `batches holding all ${PARTITIONS} partitions: ${mixed} of ${batches.length}`)
})
