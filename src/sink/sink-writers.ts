/**
 * N sink writers in one process (`ragstream sink --writers N`): N PgvectorSink instances, each its
 * own member of the sink's consumer group with its own Kafka consumer and its own Postgres
 * connection.
 *
 * Why N members and not one consumer with per-partition connections: exactly-once stays what it is
 * for one sink. Each writer claims the partitions the group gives it with a fresh owner token and
 * commits rows and next offsets in one transaction behind the compare-and-set fence (batch-writer.ts),
 * so writers in one process, in several processes or on several hosts are the same thing to the
 * group and to Postgres; a crash of the process is N crashes of ordinary sinks, each resumed from
 * the offsets stored in Postgres. What one process saves over N processes is N runtimes' memory and
 * start-up; what it costs is one event loop for N writers' decoding (the HNSW inserts, the bulk of
 * the work, run in the Postgres backends either way).
 *
 * Static membership: with `instanceId` X and N > 1, writer i joins as `X-w<i>`, so a restart of the
 * process takes every writer's partitions back without a rebalance (with N = 1 the id is X itself).
 * A restart with fewer writers (or after a crash, which left no member) would leave the static
 * members of the writers it no longer runs in the group, their partitions idle until the session
 * timeout: before joining, the process removes the members of its own id that it will not run
 * (`X-w<i>` for i ≥ N, or X itself when N > 1), so their partitions move at once.
 */
import { Admin } from '@platformatic/kafka'
import { PgvectorSink, type PgvectorSinkOptions, type SinkLogEvent } from './pgvector-sink.ts'

export interface SinkWritersOptions extends Omit<PgvectorSinkOptions, 'log'> {
  /** How many writers (group members, Postgres connections); at least 1. */
  readonly writers: number
  /** Every writer's events, with the writer's index (0 … writers − 1). */
  readonly log?: (event: SinkLogEvent, writer: number) => void
}

/** The static membership id of writer `writer` of `writers`, from the process's `--instance-id`. */
export function writerInstanceId(instanceId: string | undefined, writer: number, writers: number): string | undefined {
  if (instanceId === undefined || writers === 1) return instanceId
  return `${instanceId}-w${writer}`
}

/**
 * Whether `memberInstanceId` is a writer of the process with id `instanceId` that a process running
 * `writers` writers does not run (so nobody will take that static member's place).
 */
export function isRetiredWriter(memberInstanceId: string, instanceId: string, writers: number): boolean {
  if (memberInstanceId === instanceId) return writers > 1
  if (!memberInstanceId.startsWith(`${instanceId}-w`)) return false
  const index = memberInstanceId.slice(instanceId.length + 2)
  return /^(0|[1-9][0-9]*)$/.test(index) && (writers === 1 || Number(index) >= writers)
}

export class SinkWriters {
  readonly #sinks: readonly PgvectorSink[]
  readonly #options: SinkWritersOptions

  constructor(options: SinkWritersOptions) {
    this.#options = options
    const { writers, log, ...sinkOptions } = options
    if (!Number.isInteger(writers) || writers < 1)
      throw new RangeError(`writers must be an integer ≥ 1 (got ${String(writers)})`)
    this.#sinks = Array.from(
      { length: writers },
      (_, i) =>
        new PgvectorSink({
          ...sinkOptions,
          config: { ...sinkOptions.config, instanceId: writerInstanceId(sinkOptions.config.instanceId, i, writers) },
          ...(log ? { log: (event: SinkLogEvent) => log(event, i) } : {}),
          ...(writers > 1 ? { writer: i } : {}),
        }),
    )
  }

  get writers(): number {
    return this.#sinks.length
  }

  /** Each writer's sink instance (`host:pid:uuid`, the rows' `written_by`). */
  get instances(): readonly string[] {
    return this.#sinks.map((s) => s.instance)
  }

  /** What each writer is waiting for (`w0: kafka fetch, w1: postgres batch`), for the shutdown deadline's message. */
  get step(): string {
    if (this.#sinks.length === 1) return this.#sinks[0].step
    return this.#sinks.map((s, i) => `w${i}: ${s.step}`).join(', ')
  }

  /**
   * Runs every writer until stop(); the first writer that fails with a non-retriable error stops the
   * others (each leaves the group and closes its connection), and run() rejects with that error once
   * all have stopped.
   */
  async run(): Promise<void> {
    await this.#removeRetiredWriters()
    let failure: { error: unknown } | undefined
    await Promise.all(
      this.#sinks.map((sink) =>
        sink.run().catch((error: unknown) => {
          failure ??= { error }
          this.stop()
        }),
      ),
    )
    if (failure) throw failure.error
  }

  /**
   * Removes from the group the static members of this process's id that it does not run (a previous
   * run had more writers, or one writer under the bare id). Best effort: if the group cannot be read
   * or changed, those members leave at their session timeout, as before.
   */
  async #removeRetiredWriters(): Promise<void> {
    const { config, kafkaBrokers, writers, log } = this.#options
    const instanceId = config.instanceId
    if (instanceId === undefined) return
    const admin = new Admin({
      clientId: `ragstream-sink-${config.topology}-admin`,
      bootstrapBrokers: [...kafkaBrokers],
    })
    try {
      const group = (await admin.describeGroups({ groups: [config.groupId] })).get(config.groupId)
      const retired = [...(group?.members.values() ?? [])].filter(
        (m) => m.groupInstanceId != null && isRetiredWriter(m.groupInstanceId, instanceId, writers),
      )
      if (retired.length === 0) return
      await admin.removeMembersFromConsumerGroup({
        groupId: config.groupId,
        members: retired.map((m) => ({
          memberId: m.id,
          reason: `ragstream sink ${instanceId} runs ${writers} writer(s)`,
        })),
      })
      log?.({ event: 'writers-removed', instanceIds: retired.map((m) => m.groupInstanceId!).sort() }, 0)
    } catch (error) {
      log?.({ event: 'writers-remove-failed', error: (error as Error).message }, 0)
    } finally {
      await admin.close().catch(() => {})
    }
  }

  /** Stops every writer (see PgvectorSink.stop); run() resolves when all have left and closed. */
  stop(): void {
    for (const sink of this.#sinks) sink.stop()
  }
}
