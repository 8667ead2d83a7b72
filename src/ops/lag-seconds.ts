/**
 * Consumer lag in seconds, the figure an autoscaler wants: records behind mean nothing without a
 * rate (100 records of a chunk topic are 0.1 s of work, 100 CDC rows with an embedding call each
 * may be 10 s). Two readings per group:
 *
 * - **age of the oldest unprocessed record**: per partition with lag, the timestamp of the first
 *   committed record at or after the group's committed offset; the group's figure is the oldest.
 *   It grows while the group stalls and is 0 when it is caught up, whatever the rate.
 * - **time to drain at the current rate**: records behind / records the group committed per second
 *   since the previous reading (offsets, so transaction markers count as records). Undefined until
 *   two readings exist, or while the group commits nothing.
 *
 * The record at the committed offset is read with a fetch of a few KiB per lagging partition
 * (read_committed, the reader the runtime uses), never by joining the group.
 */
import { Consumer } from '@platformatic/kafka'
import { PartitionReader } from '../runtime/partition-reader.ts'
import type { PartitionLag } from './consumer-lag.ts'

export interface GroupLagSeconds {
  /** Records behind, over every partition. */
  readonly records: number
  /** Age of the oldest record not yet processed, in seconds (0 when caught up). */
  readonly oldestSeconds: number
  /** Seconds to drain the lag at the rate of the last interval; null when unknown (first reading, or no progress). */
  readonly drainSeconds: number | null
}

const FETCH_ROUNDS = 3

export class LagClock {
  readonly #consumer: Consumer
  readonly #reader: PartitionReader
  readonly #previous = new Map<string, { at: number; committed: bigint }>()

  constructor(brokers: readonly string[], clientId: string) {
    // The group id is never joined: the reader fetches by explicit offsets.
    this.#consumer = new Consumer({ clientId, groupId: `${clientId}-unused`, bootstrapBrokers: [...brokers] })
    this.#reader = new PartitionReader(this.#consumer, { fetchMaxBytes: 16 * 1024, fetchMaxWaitMs: 50 })
  }

  /** Reads `lags` (one group's, from `consumerLag`) in seconds; `group` keys the rate between readings. */
  async read(group: string, lags: readonly PartitionLag[], now = Date.now()): Promise<GroupLagSeconds> {
    const records = lags.reduce((sum, l) => sum + l.lag, 0)
    const committed = lags.reduce((sum, l) => sum + BigInt(l.committed ?? '0'), 0n)
    const previous = this.#previous.get(group)
    this.#previous.set(group, { at: now, committed })
    let drainSeconds: number | null = records === 0 ? 0 : null
    if (records > 0 && previous !== undefined && now > previous.at) {
      const rate = Number(committed - previous.committed) / ((now - previous.at) / 1000)
      if (rate > 0) drainSeconds = records / rate
    }
    const oldest = await this.#oldestTimestamp(lags)
    return { records, oldestSeconds: oldest === undefined ? 0 : Math.max(0, (now - oldest) / 1000), drainSeconds }
  }

  /** The earliest timestamp of the first unprocessed committed record over the lagging partitions. */
  async #oldestTimestamp(lags: readonly PartitionLag[]): Promise<number | undefined> {
    const lagging = lags.filter((l) => l.lag > 0)
    if (lagging.length === 0) return undefined
    // A partition never committed counts from its log start (-2: the reader resets it to the earliest).
    await this.#reader.assign(
      lagging.map((l) => ({
        topic: l.topic,
        partition: l.partition,
        offset: l.committed === null ? BigInt(l.end) - BigInt(l.lag) : BigInt(l.committed),
      })),
    )
    const seen = new Map<string, number>()
    // A lag of only transaction markers has no record to find: a few rounds, then such partitions count as caught up.
    for (let round = 0; round < FETCH_ROUNDS && seen.size < lagging.length; round++) {
      const batch = await this.#reader.nextBatch(10_000, 64 * 1024 * 1024)
      for (const r of batch.records) {
        const key = `${r.topic}:${r.partition}`
        if (!seen.has(key)) seen.set(key, Number(r.timestamp))
      }
    }
    return seen.size === 0 ? undefined : Math.min(...seen.values())
  }

  async close(): Promise<void> {
    await this.#consumer.close(true).catch(() => {})
  }
}

/** `12.3s`, `4m05s`, `2h13m`: a lag in seconds for a status line. */
export function formatSeconds(seconds: number | null): string {
  if (seconds === null) return '–'
  if (seconds < 60) return `${seconds.toFixed(1)}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`
}
