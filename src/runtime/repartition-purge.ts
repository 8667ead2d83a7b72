/**
 * Purges repartition topics up to the committed offsets (Kafka's DeleteRecords), as Kafka Streams
 * does: a repartition record is consumed once, by the task that owns its partition, so once its
 * offset is committed nothing reads it again. Deleting it keeps consumed internal records — which
 * may hold personal data (a forgotten customer's row travelling to its join partners) — from
 * outliving their use, and keeps the disk from growing without bound (design point 12).
 *
 * Only offsets this instance committed are purged, and only after the commit: an offset committed
 * by the group can only be read again by an explicit reset, which a purge never races with a
 * running owner. Purging is best effort and off the batch's path: at most one DeleteRecords is in
 * flight, one per `intervalMs` (0: after every commit); a failure is reported and the next commit
 * tries again with the newer offsets.
 */
import { Admin } from '@platformatic/kafka'
import type { RuntimeEvent } from './events.ts'
import type { TopicPartitionOffset } from './group-offsets.ts'

export interface RepartitionPurgerOptions {
  readonly brokers: readonly string[]
  readonly clientId: string
  /** The repartition topics among the runtime's sources. */
  readonly topics: ReadonlySet<string>
  readonly intervalMs: number
  readonly onEvent: (event: RuntimeEvent) => void
}

export class RepartitionPurger {
  readonly #options: RepartitionPurgerOptions
  /** `<topic>\0<partition>` → committed offset not purged yet. */
  readonly #pending = new Map<string, TopicPartitionOffset>()
  #admin: Admin | undefined
  #inFlight: Promise<void> | undefined
  #lastPurge = 0

  constructor(options: RepartitionPurgerOptions) {
    this.#options = options
  }

  /** After a commit: remember the committed positions of repartition partitions, and purge when due. */
  committed(positions: readonly TopicPartitionOffset[]): void {
    if (this.#options.topics.size === 0) return
    for (const p of positions)
      if (this.#options.topics.has(p.topic)) this.#pending.set(`${p.topic}\u0000${p.partition}`, p)
    if (this.#pending.size === 0 || this.#inFlight !== undefined) return
    if (Date.now() - this.#lastPurge < this.#options.intervalMs) return
    this.#inFlight = this.#purge().finally(() => (this.#inFlight = undefined))
  }

  /** Waits for the purge in flight (if any) and closes the admin client. */
  async close(): Promise<void> {
    await this.#inFlight
    await this.#admin?.close().catch(() => {})
    this.#admin = undefined
  }

  async #purge(): Promise<void> {
    this.#lastPurge = Date.now()
    const batch = [...this.#pending.values()]
    this.#pending.clear()
    const byTopic = new Map<string, { partition: number; offset: bigint }[]>()
    for (const { topic, partition, offset } of batch) {
      let list = byTopic.get(topic)
      if (list === undefined) byTopic.set(topic, (list = []))
      list.push({ partition, offset })
    }
    try {
      this.#admin ??= new Admin({
        clientId: this.#options.clientId,
        bootstrapBrokers: [...this.#options.brokers],
        retries: 1,
      })
      await this.#admin.deleteRecords({ topics: [...byTopic].map(([name, partitions]) => ({ name, partitions })) })
      this.#options.onEvent({ event: 'repartition-purged', partitions: batch.length })
    } catch (error) {
      // Keep the newest offset per partition for the next attempt (a later commit may have replaced it).
      for (const p of batch) {
        const key = `${p.topic}\u0000${p.partition}`
        if (!this.#pending.has(key)) this.#pending.set(key, p)
      }
      this.#options.onEvent({
        event: 'repartition-purge-failed',
        error: error instanceof Error ? error.message : String(error),
      })
    }
  }
}
