// Physical scans for forgetting tests: where a subject's raw values and row keys can still be found in
// an application's Redis keys and internal topics (read_uncommitted, from each partition's log start).
//   - Redis: any key, field or value of the app's keys (`rs:{<applicationId>:…`).
//   - repartition topics and dead letters: any record still in the log (consumed records are purged up
//     to the committed offsets after each commit, so they are physically gone).
//   - changelog topics: any record compaction keeps, i.e. the latest record of its key unless that is
//     a tombstone (older records stay on disk until the log cleaner runs, as docs/governance.md states).
import assert from 'node:assert/strict'
import { Admin, Consumer } from '@platformatic/kafka'
import type { Redis } from 'ioredis'
import type { RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import { endpoints, uniqueName } from './stack.ts'
import { waitCaughtUp } from './topic-offsets.ts'

const READ_UNCOMMITTED = 0

/** Every record of `topics` from each partition's log start, aborted transactions included. */
export async function readPhysically(topics: readonly string[], partitions: number) {
  const admin = new Admin({ clientId: uniqueName('scan-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  const listed = await admin.listOffsets({
    topics: topics.map((name) => ({
      name,
      partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp: -1n })),
    })),
    isolationLevel: READ_UNCOMMITTED,
  })
  await admin.close()
  const ends = new Map(listed.flatMap((t) => t.partitions.map((p) => [`${t.name}:${p.partitionIndex}`, p.offset])))
  const consumer = new Consumer({
    groupId: uniqueName('scan'),
    clientId: uniqueName('scan'),
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    maxWaitTime: 200,
  })
  const records: { topic: string; partition: number; offset: bigint; key: Buffer | null; value: Buffer | null }[] = []
  const seen = new Map<string, bigint>()
  try {
    const stream = await consumer.consume({
      topics: [...topics],
      mode: 'earliest',
      autocommit: false,
      isolationLevel: READ_UNCOMMITTED,
    })
    // Done when every partition's last record (before its end offset; markers take offsets too) was seen, or idle.
    let last = Date.now()
    const deadline = Date.now() + 30_000
    const timer = setInterval(() => {
      const done = [...ends].every(([tp, end]) => end === 0n || (seen.get(tp) ?? -1n) >= end - 2n)
      if ((done && Date.now() - last > 500) || Date.now() - last > 4_000 || Date.now() > deadline) void stream.close()
    }, 100)
    for await (const m of stream) {
      last = Date.now()
      seen.set(`${m.topic}:${m.partition}`, m.offset)
      const value = m.value as Buffer | null | undefined
      records.push({
        topic: m.topic,
        partition: m.partition,
        offset: m.offset,
        key: (m.key as Buffer | null) ?? null,
        value: value && value.length > 0 ? value : null,
      })
    }
    clearInterval(timer)
  } finally {
    await consumer.close(true)
  }
  return records
}

/** Where each needle occurs ("<place>: <needle>"), and how many internal records were read. */
export async function scanApp(
  redis: Redis,
  applicationId: string,
  internal: readonly { readonly name: string; readonly role: string }[],
  partitions: number,
  needles: readonly string[],
): Promise<{ found: string[]; records: number }> {
  const changelogs = new Set(internal.filter((x) => x.role === 'changelog').map((x) => x.name))
  const found: string[] = []
  const hits = (where: string, ...bytes: (Buffer | string | null)[]) => {
    for (const b of bytes)
      for (const needle of needles)
        if (b !== null && b.toString('latin1').includes(needle)) found.push(`${where}: ${needle}`)
  }
  for (const key of await redis.keys(`rs:{${applicationId}:*`)) {
    const type = await redis.type(key)
    if (type === 'hash') {
      const entries = await redis.hgetallBuffer(key)
      for (const [field, value] of Object.entries(entries)) hits(`redis ${key} ${field.slice(0, 40)}`, field, value)
    } else if (type === 'zset') hits(`redis ${key}`, ...(await redis.zrange(key, 0, -1)))
    else hits(`redis ${key}`, key, await redis.getBuffer(key))
  }
  const records = await readPhysically(
    internal.map((x) => x.name),
    partitions,
  )
  const latest = new Map<string, (typeof records)[number]>()
  for (const r of records)
    if (changelogs.has(r.topic)) latest.set(`${r.topic}:${r.partition}:${r.key?.toString('hex')}`, r)
    else hits(`${r.topic}[${r.partition}]@${r.offset}`, r.key, r.value)
  for (const r of latest.values())
    if (r.value !== null) hits(`${r.topic}[${r.partition}]@${r.offset} (kept by compaction)`, r.key, r.value)
  return { found, records: records.length }
}

/** Caught up (waitCaughtUp), and every repartition partition purged up to the group's committed offset. */
export async function caughtUpAndPurged(
  admin: Admin,
  partitions: number,
  applicationId: string,
  sources: readonly string[],
  repartitions: readonly string[],
  events: RuntimeEvent[],
): Promise<void> {
  await waitCaughtUp(admin, partitions, applicationId, sources, repartitions, 90_000, events)
  const deadline = Date.now() + 20_000
  for (;;) {
    const [group] = await admin.listConsumerGroupOffsets({ groups: [applicationId], requireStable: true })
    const committed = new Map<string, bigint>()
    for (const t of group?.topics ?? [])
      for (const p of t.partitions) committed.set(`${t.name}:${p.partitionIndex}`, p.committedOffset)
    const starts = await admin.listOffsets({
      topics: repartitions.map((name) => ({
        name,
        partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp: -2n })),
      })),
    })
    const behind = starts.flatMap((t) =>
      t.partitions
        .filter((p) => p.offset < (committed.get(`${t.name}:${p.partitionIndex}`) ?? 0n))
        .map((p) => `${t.name}[${p.partitionIndex}] starts at ${p.offset}`),
    )
    if (behind.length === 0) return
    assert.ok(Date.now() < deadline, `repartition topics not purged to the committed offsets: ${behind.join(', ')}`)
    await new Promise((resolve) => setTimeout(resolve, 300))
  }
}
