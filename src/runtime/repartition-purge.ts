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
  #timer: NodeJS.Timeout | undefined
  #closed = false
  #lastPurge = 0
  /** After a failed purge, the next waits at least a second (a broker that is down is not hammered). */
  #retryAfter = 0

  constructor(options: RepartitionPurgerOptions) {
    this.#options = options
  }

  /** After a commit: remember the committed positions of repartition partitions, and purge when due. */
  committed(positions: readonly TopicPartitionOffset[]): void {
    if (this.#options.topics.size === 0) return
    for (const p of positions)
      if (this.#options.topics.has(p.topic)) this.#pending.set(`${p.topic}\u0000${p.partition}`, p)
    this.#schedule()
  }

  /**
   * Purges now, or when the interval has passed, or when the purge in flight ends: offsets committed
   * meanwhile are never left behind waiting for a commit that may not come (an idle partition).
   */
  #schedule(): void {
    if (this.#closed || this.#pending.size === 0 || this.#inFlight !== undefined || this.#timer !== undefined) return
    const wait = Math.max(this.#lastPurge + this.#options.intervalMs, this.#retryAfter) - Date.now()
    if (wait > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        this.#schedule()
      }, wait).unref()
      return
    }
    this.#inFlight = this.#purge().finally(() => {
      this.#inFlight = undefined
      this.#schedule()
    })
  }

  /** Waits for the purge in flight (if any) and closes the admin client. */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#timer)
    this.#timer = undefined
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
      this.#retryAfter = Date.now() + 1_000
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
