/**
 * `ragstream generate`: writes the support dataset's Debezium change events to Kafka — a fast
 * backfill of N tickets, then a trickle at a fixed rate — with an idempotent producer.
 */
import { Admin, Producer } from '@platformatic/kafka'
import { SupportDataset, type GeneratedRecord } from './support-dataset.ts'

export interface GenerateOptions {
  readonly brokers: readonly string[]
  readonly seed: number
  readonly server: string
  readonly withSchema: boolean
  /** Tickets in the initial snapshot (op=r). */
  readonly backfill: number
  /** Live changes per second after the backfill; 0 = stop after the backfill. */
  readonly rate: number
  /** Stop after this many live changes (default: unbounded until `signal` aborts). */
  readonly changes?: number
  readonly malformedRate?: number
  /**
   * Create missing topics (compacted: each is a table's changelog) with this many partitions; with
   * `appendTime`, stamped by the broker on append (`message.timestamp.type=LogAppendTime`), so a
   * record's timestamp is when it reached the topic (the freshness split: docs/sql.md).
   */
  readonly createTopics?: { partitions: number; appendTime?: boolean }
  readonly signal?: AbortSignal
  readonly onProgress?: (progress: GenerateProgress) => void
  /** Awaited once the backfill is written, before the first live change (e.g. to let a processor catch up). */
  readonly afterBackfill?: () => Promise<void>
}

export interface GenerateProgress {
  readonly phase: 'backfill' | 'trickle' | 'done'
  readonly records: number
  readonly changes: number
  readonly malformed: number
  readonly byKind: Readonly<Record<string, number>>
  readonly elapsedMs: number
}

const BATCH = 500

export function generatorTopics(server: string): string[] {
  const dataset = new SupportDataset({ seed: 0, server, withSchema: false })
  return [`${server}.public.customers`, `${server}.public.tickets`, dataset.tables.productsTopic]
}

async function ensureTopics(
  brokers: readonly string[],
  topics: string[],
  partitions: number,
  appendTime = false,
): Promise<void> {
  const admin = new Admin({ clientId: 'ragstream-generate-admin', bootstrapBrokers: [...brokers] })
  try {
    const existing = new Set(await admin.listTopics())
    const missing = topics.filter((t) => !existing.has(t))
    if (missing.length > 0) {
      await admin.createTopics({
        topics: missing,
        partitions,
        replicas: 1,
        configs: [
          { name: 'cleanup.policy', value: 'compact' },
          ...(appendTime ? [{ name: 'message.timestamp.type', value: 'LogAppendTime' }] : []),
        ],
      })
    }
  } finally {
    await admin.close()
  }
}

export async function generate(options: GenerateOptions): Promise<GenerateProgress> {
  if (options.createTopics)
    await ensureTopics(
      options.brokers,
      generatorTopics(options.server),
      options.createTopics.partitions,
      options.createTopics.appendTime,
    )
  const dataset = new SupportDataset({
    seed: options.seed,
    server: options.server,
    withSchema: options.withSchema,
    malformedRate: options.malformedRate,
  })
  const producer = new Producer({
    clientId: `ragstream-generate-${options.server}`,
    bootstrapBrokers: [...options.brokers],
    idempotent: true,
  })
  const started = Date.now()
  const byKind: Record<string, number> = {}
  let records = 0
  let changes = 0
  let malformed = 0
  let pending: GeneratedRecord[] = []
  const progress = (phase: GenerateProgress['phase']): GenerateProgress => ({
    phase,
    records,
    changes,
    malformed,
    byKind: { ...byKind },
    elapsedMs: Date.now() - started,
  })

  const flush = async (): Promise<void> => {
    if (pending.length === 0) return
    const batch = pending
    pending = []
    await producer.send({
      messages: batch.map((r) => ({ topic: r.topic, key: r.key ?? undefined, value: r.value ?? undefined })),
    })
    records += batch.length
  }
  const take = async (generated: Iterable<GeneratedRecord>): Promise<void> => {
    for (const record of generated) {
      byKind[record.kind] = (byKind[record.kind] ?? 0) + 1
      if (record.malformed) malformed++
      pending.push(record)
      if (pending.length >= BATCH) await flush()
    }
  }

  try {
    let lastReport = Date.now()
    let backfilled = 0
    for (const record of dataset.backfill(options.backfill)) {
      await take([record])
      if (++backfilled % 5000 === 0 && Date.now() - lastReport > 1000) {
        lastReport = Date.now()
        options.onProgress?.(progress('backfill'))
      }
    }
    await flush()
    options.onProgress?.(progress('backfill'))
    await options.afterBackfill?.()
    if (options.rate > 0) {
      const limit = options.changes ?? Number.POSITIVE_INFINITY
      const trickleStart = Date.now()
      while (changes < limit && !options.signal?.aborted) {
        await take(dataset.step())
        changes++
        // Pace against the start time, so a slow send is caught up rather than drifting.
        const due = trickleStart + (changes / options.rate) * 1000
        if (due > Date.now() + 20 || pending.length >= BATCH) await flush()
        const wait = due - Date.now()
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
        if (Date.now() - lastReport > 1000) {
          lastReport = Date.now()
          options.onProgress?.(progress('trickle'))
        }
      }
    }
    await flush()
  } finally {
    await producer.close()
  }
  const done = progress('done')
  options.onProgress?.(done)
  return done
}
