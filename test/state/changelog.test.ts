// Changelog restore against the real broker and Redis: stores written the way the runtime writes
// them (changelog records produced in a Kafka transaction, flush after commit), then rebuilt from
// the compacted changelog topic after Redis lost everything, or resumed from a checkpoint.
import { test } from 'node:test'
import type { TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Admin, Producer } from '@platformatic/kafka'
import { checkKafka, checkRedis } from '../../src/config/services.ts'
import { RagstreamError } from '../../src/errors.ts'
import { ChangelogRestorer, changelogSinkRecords, changelogTopic } from '../../src/state/changelog.ts'
import type { RestoreProgress } from '../../src/state/changelog.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import type { StateStore } from '../../src/state/store.ts'
import { writeAbortCommitEmptyAbort } from '../support/runtime-harness.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'
import { redisStoreHarness, startPrivateRedis } from './redis-harness.ts'

type Model = Map<number, Map<string, Buffer>>

function transactionalProducer(t: TestContext, name: string): Producer {
  const producer = new Producer({
    clientId: uniqueName(name),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    transactionalId: uniqueName(name),
    idempotent: true,
  })
  t.after(() => producer.close())
  return producer
}

/** Produces the store's drained changelog in one transaction; returns the next offset per partition, or nothing when aborted. */
async function produceBatch(
  producer: Producer,
  applicationId: string,
  store: StateStore,
  outcome: 'commit' | 'abort',
): Promise<Map<number, bigint>> {
  const records = changelogSinkRecords(applicationId, store.drainChangelog())
  const tx = await producer.beginTransaction()
  const result = await tx.send({
    messages: records.map((r) => ({
      topic: r.topic,
      partition: r.partition,
      key: r.key ?? undefined,
      value: r.value as Buffer,
    })),
  })
  if (outcome === 'abort') {
    await tx.abort()
    return new Map()
  }
  await tx.commit()
  const counts = new Map<number, number>()
  for (const r of records) counts.set(r.partition, (counts.get(r.partition) ?? 0) + 1)
  return new Map(
    (result.offsets ?? []).map(({ partition, offset }) => [partition, offset + BigInt(counts.get(partition) ?? 0)]),
  )
}

/** Applies writes to the store overlay and, when the batch commits, to the model. */
function write(store: StateStore, model: Model | undefined, writes: [number, string, Buffer | null][]): void {
  for (const [partition, key, value] of writes) {
    if (value === null) store.delete(partition, key)
    else store.put(partition, key, value)
    if (!model) continue
    let values = model.get(partition)
    if (!values) model.set(partition, (values = new Map()))
    if (value === null) values.delete(key)
    else values.set(key, value)
  }
}

async function assertStoreEquals(
  store: StateStore,
  partition: number,
  keys: Iterable<string>,
  expected: Map<string, Buffer> | undefined,
): Promise<void> {
  const all = [...new Set(keys)]
  await store.prefetch(partition, all)
  for (const key of all)
    assert.deepEqual(store.get(partition, key), expected?.get(key), `partition ${partition} key ${key}`)
}

test('changelog: changelog records go to <applicationId>-<store>-changelog partition p, keyed by the UTF-8 key, deletes as tombstones', () => {
  assert.equal(changelogTopic('support-v1', 'customers'), 'support-v1-customers-changelog')
  assert.deepEqual(
    changelogSinkRecords('app', [
      { store: 'customers', partition: 2, key: 'ключ', value: Buffer.from([0, 1]) },
      { store: 'orders', partition: 0, key: 'k', value: null },
    ]),
    [
      { topic: 'app-customers-changelog', partition: 2, key: Buffer.from('ключ', 'utf8'), value: Buffer.from([0, 1]) },
      { topic: 'app-orders-changelog', partition: 0, key: Buffer.from('k'), value: null },
    ],
  )
})

test('changelog: after Redis lost everything (FLUSHALL), a restore from the changelog rebuilds the exact committed state', async (t) => {
  await checkKafka(endpoints)
  const redis = await startPrivateRedis(t)
  const applicationId = uniqueName('rs-cl')
  const topic = changelogTopic(applicationId, 'orders')
  await createTopics(t, [topic], 2, [{ name: 'cleanup.policy', value: 'compact' }])
  const backend = new RedisStateBackend({ applicationId, target: { kind: 'single', url: redis.url } })
  t.after(() => backend.close())
  const store = backend.store('orders')
  const producer = transactionalProducer(t, 'rs-cl')

  const model: Model = new Map()
  const touched = new Set<string>()
  const committedPerPartition = new Map<number, number>()
  const batches: { writes: [number, string, Buffer | null][]; outcome: 'commit' | 'abort' }[] = []
  // Six batches over 150 keys in two partitions: overwrites, deletes, binary and empty values, and
  // one aborted batch whose writes must never come back.
  for (let b = 0; b < 6; b++) {
    const writes: [number, string, Buffer | null][] = []
    for (let i = 0; i < 120; i++) {
      const n = (b * 37 + i * 11) % 150
      const key = `key-${n}`
      const value = (b + i) % 9 === 0 ? null : i % 13 === 0 ? Buffer.alloc(0) : Buffer.from([b, i, 0, 255, n % 256])
      writes.push([n % 2, key, value])
    }
    batches.push({ writes, outcome: b === 3 ? 'abort' : 'commit' })
  }
  batches[3].writes.push([0, 'only-in-aborted', Buffer.from('never')])
  for (const { writes, outcome } of batches) {
    write(store, outcome === 'commit' ? model : undefined, writes)
    for (const [, key] of writes) touched.add(key)
    if (outcome === 'commit') {
      // The log keeps every write (last per key per batch), compaction aside.
      const distinct = new Set(writes.map(([p, k]) => `${p}:${k}`))
      for (const id of distinct) {
        const p = Number(id.split(':')[0])
        committedPerPartition.set(p, (committedPerPartition.get(p) ?? 0) + 1)
      }
    }
    const checkpoints = await produceBatch(producer, applicationId, store, outcome)
    if (outcome === 'commit') await store.flush(checkpoints)
    else store.discard()
  }
  for (const p of [0, 1]) await assertStoreEquals(store, p, touched, model.get(p))
  const flushed = [await store.checkpoint(0), await store.checkpoint(1)]
  store.discard()

  await redis.admin.flushall()
  assert.equal(await store.checkpoint(0), undefined)
  assert.equal(await store.checkpoint(1), undefined)

  const restorer = new ChangelogRestorer({
    bootstrapBrokers: endpoints.kafkaBrokers,
    clientId: uniqueName('rs-cl-restore'),
    chunkSize: 50,
  })
  t.after(() => restorer.close())
  for (const p of [0, 1]) {
    const progress: RestoreProgress[] = []
    const result = await restorer.restore({
      store,
      applicationId,
      partition: p,
      onProgress: (step) => progress.push(step),
    })
    assert.equal(result.cleared, true)
    assert.equal(result.from, 0n)
    assert.equal(result.restored, committedPerPartition.get(p), 'every committed record, none of the aborted batch')
    // The last offset of the log is a commit marker: the restore ends past it.
    assert.equal(result.to, (flushed[p] ?? 0n) + 1n)
    assert.equal(await store.checkpoint(p), result.to)
    assert.ok(progress.length >= 2, 'progress is reported per chunk')
    for (let i = 1; i < progress.length; i++)
      assert.ok(progress[i].restored >= progress[i - 1].restored && progress[i].position >= progress[i - 1].position)
    const last = progress.at(-1)!
    assert.deepEqual([last.restored, last.position, last.end], [result.restored, result.to, result.to])
    assert.ok(last.total >= last.restored)

    await assertStoreEquals(store, p, [...touched, 'only-in-aborted'], model.get(p))
    store.discard()

    const again = await restorer.restore({ store, applicationId, partition: p })
    assert.deepEqual(
      [again.cleared, again.restored, again.from, again.to],
      [false, 0, result.to, result.to],
      'a second restore finds nothing to do',
    )
  }
})

test('changelog: a restore resumes from the checkpoint, skips aborted records and ends at the LSO while a transaction is open', async (t) => {
  await checkKafka(endpoints)
  await checkRedis(endpoints.redisUrl)
  const h = await redisStoreHarness(t, { kind: 'single', url: endpoints.redisUrl })
  const applicationId = h.backend.applicationId
  const topic = changelogTopic(applicationId, 'orders')
  await createTopics(t, [topic], 1, [{ name: 'cleanup.policy', value: 'compact' }])
  const store = h.open('orders')
  const producer = transactionalProducer(t, 'rs-cl-a')
  const model: Model = new Map()
  const v = (s: string): Buffer => Buffer.from(s)

  // A: committed and flushed.
  write(store, model, [
    [0, 'a', v('a1')],
    [0, 'b', v('b1')],
    [0, 'c', v('c1')],
  ])
  await store.flush(await produceBatch(producer, applicationId, store, 'commit'))
  const checkpointA = await store.checkpoint(0)
  // B: committed, but the instance died before its flush: Redis still holds A.
  write(store, model, [
    [0, 'a', v('a2')],
    [0, 'b', null],
    [0, 'd', v('d1')],
  ])
  await produceBatch(producer, applicationId, store, 'commit')
  store.discard()
  // C: aborted.
  write(store, undefined, [
    [0, 'a', v('aborted')],
    [0, 'e', v('aborted')],
  ])
  await produceBatch(producer, applicationId, store, 'abort')
  store.discard()
  // D: a second producer's transaction, still open while the restore runs.
  const other = transactionalProducer(t, 'rs-cl-open')
  const open = await other.beginTransaction()
  await open.send({
    messages: [
      { topic, partition: 0, key: v('f'), value: v('uncommitted') },
      { topic, partition: 0, key: v('a'), value: v('uncommitted') },
    ],
  })

  // One record batch per fetch: an aborted batch and its abort marker arrive in different responses.
  const restorer = new ChangelogRestorer({
    bootstrapBrokers: endpoints.kafkaBrokers,
    clientId: uniqueName('rs-cl-restore'),
    fetchMaxBytes: 1,
  })
  t.after(() => restorer.close())
  const started: { from: bigint; to: bigint; cleared: boolean }[] = []
  const result = await restorer.restore({ store, topic, partition: 0, onStart: (range) => started.push({ ...range }) })
  assert.equal(result.cleared, false)
  assert.equal(result.from, checkpointA)
  assert.deepEqual(
    started,
    [{ from: result.from, to: result.to, cleared: false }],
    'onStart names the range before the replay',
  )
  assert.equal(result.restored, 3, "only batch B's records are replayed")
  await assertStoreEquals(store, 0, ['a', 'b', 'c', 'd', 'e', 'f'], model.get(0))
  store.discard()
  await open.abort()

  // A checkpoint beyond the end of the log (the topic was recreated): the partition starts over.
  await store.restore(0, [], result.to + 1000n)
  const reset = await restorer.restore({ store, applicationId, partition: 0 })
  assert.equal(reset.cleared, true)
  assert.equal(reset.restored, 6)
  assert.ok(reset.to > result.to, 'the end moved past the aborted transaction D and its marker')
  await assertStoreEquals(store, 0, ['a', 'b', 'c', 'd', 'e', 'f'], model.get(0))
})

test('changelog: a restore keeps a committed transaction that lies between two aborts of the same producer id (the second without records here)', async (t) => {
  await checkKafka(endpoints)
  const topic = uniqueName('rs-cl-abort-commit')
  await createTopics(t, [topic], 1, [{ name: 'cleanup.policy', value: 'compact' }])
  const committed = await writeAbortCommitEmptyAbort(t, topic)
  const store = new MemoryStateStore('abort-commit')
  const restorer = new ChangelogRestorer({
    bootstrapBrokers: endpoints.kafkaBrokers,
    clientId: uniqueName('rs-cl-restore'),
  })
  t.after(() => restorer.close())
  const result = await restorer.restore({ store, topic, partition: 0 })
  assert.equal(result.restored, committed.length)
  await assertStoreEquals(
    store,
    0,
    [...committed, 'aborted-1', 'aborted-2'],
    new Map(committed.map((v) => [v, Buffer.from(v)])),
  )
})

test('changelog: a transaction that commits a moment after the restore starts (its marker still on its way) is restored', async (t) => {
  await checkKafka(endpoints)
  const topic = uniqueName('rs-cl-late-commit')
  await createTopics(t, [topic], 1, [{ name: 'cleanup.policy', value: 'compact' }])
  const producer = transactionalProducer(t, 'rs-cl-late')
  const open = await producer.beginTransaction()
  await open.send({ messages: [{ topic, partition: 0, key: Buffer.from('k'), value: Buffer.from('committed late') }] })
  const store = new MemoryStateStore('late-commit')
  const restorer = new ChangelogRestorer({
    bootstrapBrokers: endpoints.kafkaBrokers,
    clientId: uniqueName('rs-cl-restore'),
    openTransactionWaitMs: 5_000,
  })
  t.after(() => restorer.close())
  const restoring = restorer.restore({ store, topic, partition: 0 })
  await new Promise((r) => setTimeout(r, 300))
  await open.commit()
  const result = await restoring
  assert.equal(result.restored, 1, 'the restore waited for the open transaction and read its record')
  await store.prefetch(0, new Set(['k']))
  assert.equal(store.get(0, 'k')?.toString(), 'committed late')
})

test('changelog: restoring from a changelog topic that does not exist fails with a message naming the topic', async (t) => {
  await checkKafka(endpoints)
  await checkRedis(endpoints.redisUrl)
  const h = await redisStoreHarness(t, { kind: 'single', url: endpoints.redisUrl })
  const restorer = new ChangelogRestorer({
    bootstrapBrokers: endpoints.kafkaBrokers,
    clientId: uniqueName('rs-cl-restore'),
    partitionWaitMs: 1_500,
  })
  t.after(() => restorer.close())
  const topic = uniqueName('rs-cl-missing')
  await assert.rejects(restorer.restore({ store: h.open('orders'), topic, partition: 0 }), (error: unknown) => {
    assert.ok(error instanceof RagstreamError, String(error))
    assert.equal(error.code, 'RS_CONFIG_INVALID')
    assert.match(error.message, new RegExp(`${topic}`))
    assert.equal(error.context.topic, topic)
    return true
  })
})

test('changelog: restoring a partition the topic does not have fails, once the wait is over, with RS_CONFIG_INVALID naming the topic and partition', async (t) => {
  await checkKafka(endpoints)
  await checkRedis(endpoints.redisUrl)
  const h = await redisStoreHarness(t, { kind: 'single', url: endpoints.redisUrl })
  const topic = uniqueName('rs-cl-narrow')
  await createTopics(t, [topic], 2, [{ name: 'cleanup.policy', value: 'compact' }])
  const restorer = new ChangelogRestorer({
    bootstrapBrokers: endpoints.kafkaBrokers,
    clientId: uniqueName('rs-cl-restore'),
    partitionWaitMs: 2_000,
  })
  t.after(() => restorer.close())
  const store = h.open('orders')
  // Partition 1 exists (and may not be settled yet: the wait covers that); partition 5 never will.
  assert.equal((await restorer.restore({ store, topic, partition: 1 })).restored, 0)
  const started = Date.now()
  await assert.rejects(restorer.restore({ store, topic, partition: 5 }), (error: unknown) => {
    assert.ok(error instanceof RagstreamError, String(error))
    assert.equal(error.code, 'RS_CONFIG_INVALID')
    assert.match(error.message, new RegExp(`${topic} has no partition 5`))
    assert.deepEqual([error.context.topic, error.context.partition], [topic, 5])
    return true
  })
  assert.ok(
    Date.now() - started >= 1_900,
    'a missing partition is waited for (metadata refreshed) before it counts as missing',
  )
})

test('changelog: a stop signal ends the wait for an unsettled partition at once, as unavailable rather than misconfigured', async (t) => {
  await checkKafka(endpoints)
  await checkRedis(endpoints.redisUrl)
  const h = await redisStoreHarness(t, { kind: 'single', url: endpoints.redisUrl })
  const restorer = new ChangelogRestorer({
    bootstrapBrokers: endpoints.kafkaBrokers,
    clientId: uniqueName('rs-cl-restore'),
  })
  t.after(() => restorer.close())
  const topic = uniqueName('rs-cl-stopped')
  const started = Date.now()
  await assert.rejects(
    restorer.restore({ store: h.open('orders'), topic, partition: 0, signal: AbortSignal.timeout(300) }),
    (error: unknown) => {
      assert.ok(error instanceof RagstreamError, String(error))
      assert.equal(error.code, 'RS_SERVICE_UNAVAILABLE')
      assert.match(error.message, new RegExp(`stopped while waiting.*${topic} is unknown`))
      return true
    },
  )
  assert.ok(Date.now() - started < 5_000, `stopped within ${Date.now() - started} ms, not after the 30 s wait`)
})

test('changelog: a restore right after the changelog topics were created succeeds (the broker may not know them yet, or name a leader not ready)', async (t) => {
  await checkKafka(endpoints)
  await checkRedis(endpoints.redisUrl)
  const h = await redisStoreHarness(t, { kind: 'single', url: endpoints.redisUrl })
  const admin = new Admin({ clientId: uniqueName('rs-cl-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  const created: string[] = []
  t.after(async () => {
    await admin.deleteTopics({ topics: created }).catch(() => {})
    await admin.close()
  })
  const PARTITIONS = 4
  const store = h.open('orders')
  // One restorer across rounds, as a runtime keeps it: its metadata cache holds the earlier topics.
  const restorer = new ChangelogRestorer({
    bootstrapBrokers: endpoints.kafkaBrokers,
    clientId: uniqueName('rs-cl-restore'),
  })
  t.after(() => restorer.close())
  for (let round = 0; round < 6; round++) {
    // Several topics at once, as a topology's internal topics are created; restored with no wait at all.
    const topics = Array.from({ length: 3 }, (_, i) => uniqueName(`rs-cl-fresh-${round}-${i}`))
    created.push(...topics)
    await admin.createTopics({
      topics,
      partitions: PARTITIONS,
      replicas: 1,
      configs: [{ name: 'cleanup.policy', value: 'compact' }],
    })
    // A fresh client each second round: a fresh restorer has no metadata cached at all.
    const fresh =
      round % 2 === 1
        ? new ChangelogRestorer({ bootstrapBrokers: endpoints.kafkaBrokers, clientId: uniqueName('rs-cl-restore') })
        : undefined
    try {
      for (const topic of topics) {
        for (let partition = 0; partition < PARTITIONS; partition++) {
          const result = await (fresh ?? restorer).restore({ store, topic, partition })
          assert.deepEqual(
            [result.topic, result.partition, result.restored, result.to],
            [topic, partition, 0, 0n],
            `round ${round} ${topic}-${partition}`,
          )
          assert.equal(await store.checkpoint(partition), 0n)
        }
      }
    } finally {
      await fresh?.close()
    }
  }
})
