/**
 * Restores one store partition from its changelog topic: from the backing store's checkpoint (the
 * next changelog offset it already holds) to the changelog's last stable offset. A missing
 * checkpoint means the backing store lost its data (Redis without persistence): clear and replay
 * from the start. Only committed changelog records are applied (read_committed, aborted transactions
 * dropped), so the restored state is exactly what the committed outputs were computed from.
 *
 * Changelog record (wire format): key = the store key as UTF-8, value = the stored bytes, null value =
 * tombstone; partition = the store partition = the owning task.
 */
import { ListOffsetTimestamps, type Consumer } from '@platformatic/kafka'
import type { ChangelogRecord, StateStore } from '../state/store.ts'
import { PartitionReader } from './partition-reader.ts'
import type { SinkRecord } from './task.ts'

export function changelogSinkRecord(topic: string, record: ChangelogRecord): SinkRecord {
  return { topic, partition: record.partition, key: Buffer.from(record.key, 'utf8'), value: record.value }
}

export async function partitionOffset(consumer: Consumer, topic: string, partition: number, which: 'earliest' | 'latest-stable'): Promise<bigint> {
  const offsets = await consumer.listOffsets({
    topics: [topic],
    partitions: { [topic]: [partition] },
    timestamp: which === 'earliest' ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST,
    isolationLevel: 1,
  })
  const value = offsets.get(topic)?.[partition]
  if (value === undefined) throw new Error(`no ${which} offset for ${topic}:${partition}`)
  return value
}

export interface RestoreResult {
  readonly from: bigint
  readonly to: bigint
  readonly records: number
}

export async function restoreStorePartition(
  consumer: Consumer,
  store: StateStore,
  changelogTopic: string,
  partition: number,
  limits: { fetchMaxBytes: number; fetchMaxWaitMs: number },
): Promise<RestoreResult> {
  const checkpoint = await store.checkpoint(partition)
  const end = await partitionOffset(consumer, changelogTopic, partition, 'latest-stable')
  const start = await partitionOffset(consumer, changelogTopic, partition, 'earliest')
  let from: bigint
  if (checkpoint === undefined || checkpoint > end || checkpoint < start) {
    await store.clear(partition)
    from = start
    if (from >= end) {
      await store.restore(partition, [], end)
      return { from, to: end, records: 0 }
    }
  } else {
    from = checkpoint
    if (from >= end) return { from, to: end, records: 0 }
  }

  const reader = new PartitionReader(consumer, limits)
  await reader.assign([{ topic: changelogTopic, partition, offset: from }])
  let restored = 0
  let position = from
  while (position < end) {
    const batch = await reader.nextBatch(10_000, limits.fetchMaxBytes)
    position = reader.position(changelogTopic, partition)!
    if (batch.records.length === 0 && batch.positions.length === 0) continue
    await store.restore(
      partition,
      batch.records.map((r) => ({ key: r.key?.toString('utf8') ?? '', value: r.value })),
      position,
    )
    restored += batch.records.length
  }
  return { from, to: position, records: restored }
}
