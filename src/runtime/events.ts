/**
 * What the Kafka runtime reports while it runs, as one discriminated union on `event`: a consumer
 * switches on `event.event` and gets the fields of that event typed, with no casts. Events carry
 * counts, positions and error messages, never record values. Offsets are bigint (JSON writers turn
 * them into strings).
 */
import type { ErrorCode, Recovery } from '../errors.ts'

/** A service that did not answer, named (see `unavailableService` in src/errors.ts). */
export interface ServiceFields {
  /** Kafka, Redis, PostgreSQL, the schema registry, …: present when the failure is RS_SERVICE_UNAVAILABLE. */
  readonly service?: string
  /** Its address, password masked. */
  readonly address?: string
  readonly hint?: string
}

/** How one failure was handled, as decided by `classifyError` (src/errors.ts). */
export interface FailureFields extends ServiceFields {
  /** The code the failure amounts to; absent when nothing classified it (then it is retried). */
  readonly code?: ErrorCode
  readonly recovery: Recovery
  readonly error: string
}

export type RuntimeEvent =
  /** Joining the consumer group failed (broker down, coordinator moving); retried with backoff. */
  | (ServiceFields & {
      readonly event: 'join-failed'
      readonly error: string
      readonly code?: ErrorCode
      readonly retryInMs: number
    })
  /** The consumer's background work (heartbeat, rejoin) failed; the loop rejoins. */
  | (ServiceFields & { readonly event: 'group-error'; readonly error: string })
  /**
   * The group rebalances (a member joined or left; learnt at a heartbeat): every task of this
   * instance pauses until the `assigned` that follows.
   */
  | { readonly event: 'rebalancing' }
  /** A new assignment: the tasks (input partitions) this instance owns from now on. */
  | { readonly event: 'assigned'; readonly generationId: number; readonly tasks: readonly number[] }
  /** A store partition replays its changelog from `from` to `to` (exclusive). */
  | {
      readonly event: 'restoring'
      readonly store: string
      readonly partition: number
      readonly from: bigint
      readonly to: bigint
    }
  /**
   * One per store partition of every assignment, after its restore: `records` replayed from `from`
   * (the Redis checkpoint, or the log start when `cleared`: Redis had nothing) to `to`. A task whose
   * Redis copy was current reports `records: 0`: it moved without moving data.
   */
  | {
      readonly event: 'restored'
      readonly store: string
      readonly partition: number
      readonly from: bigint
      readonly to: bigint
      readonly records: number
      readonly cleared: boolean
    }
  /** Committed offsets are held by an open transaction (e.g. a previous owner's); waiting for it to end. */
  | { readonly event: 'offsets-unstable' }
  /** Committed offsets fell out of the log (retention): these partitions restart by the reset policy. */
  | {
      readonly event: 'offset-out-of-range'
      readonly partitions: readonly string[]
      readonly policy: 'earliest' | 'latest'
    }
  /**
   * A batch was abandoned before its commit: nothing of it is visible, it is read again from the
   * committed offsets. `phase` says where it failed; `inTransaction` failures have an unknown
   * outcome until the re-initialised producer settles it (code RS_TRANSACTION_UNCERTAIN when nothing
   * more specific applies).
   */
  | (FailureFields & {
      readonly event: 'batch-aborted'
      readonly phase: 'assign' | 'process' | 'transaction'
      readonly retryInMs?: number
    })
  /**
   * A batch committed, then something failed before its store overlays reached the backing store:
   * the batch stands (outputs, changelog, offsets); the stores are restored from the changelogs.
   */
  | (FailureFields & { readonly event: 'committed-then-failed'; readonly records: number })
  /** An output record was larger than `maxRecordBytes`: its source record went to the dead-letter topic instead. */
  | {
      readonly event: 'output-dead-lettered'
      readonly code: 'RS_RECORD_TOO_LARGE'
      readonly topic: string
      readonly partition: number
      readonly bytes: number
      readonly limit: number
      readonly source: { readonly topic: string; readonly partition: number; readonly offset: bigint } | undefined
    }
  /**
   * A batch's state would be too large for its changelog: nothing of it was produced, and it is read
   * again one record at a time, so the one record that causes it is dead-lettered alone.
   */
  | {
      readonly event: 'isolating-records'
      readonly code: 'RS_RECORD_TOO_LARGE'
      readonly topic: string
      readonly bytes: number
      readonly limit: number
      readonly records: number
    }
  /**
   * Records a chained round read before they were produced did not land at the offsets it read them
   * at (another producer wrote to the partition first): the transaction was aborted and is read again
   * from the committed offsets; hop chaining produces before it chains for `pausedForMs`.
   */
  | {
      readonly event: 'chain-conflict'
      readonly topic: string
      readonly partition: number
      readonly expectedOffset: string
      readonly landedAt: string
      readonly pausedForMs: number
    }
  /** The producer may be in a broken state: it was closed, and the next transaction starts with a new one. */
  | { readonly event: 'producer-replaced'; readonly reason: string }
  /**
   * The Kafka client threw outside any promise (a client bug: docs/operations.md "Known client
   * issues"); the process lives, the producer is replaced, and a consumer fault rejoins the group.
   */
  | {
      readonly event: 'client-error-contained'
      readonly client: 'producer' | 'consumer' | 'client'
      readonly error: string
    }
  /** Records of repartition topics up to the committed offsets were deleted. */
  | { readonly event: 'repartition-purged'; readonly partitions: number }
  /** Purging repartition topics failed; retried after a later commit (nothing depends on it). */
  | { readonly event: 'repartition-purge-failed'; readonly error: string }
  /** Another instance took over the transactional id; this instance stops. */
  | { readonly event: 'fenced'; readonly transactionalId: string; readonly error: string }
  /** The instance stops on an error retrying cannot fix. */
  | (FailureFields & { readonly event: 'fatal' })
  /** A store refused a flush because another owner wrote a newer checkpoint; its overlay is dropped. */
  | { readonly event: 'store-fenced'; readonly store: string; readonly error: string }
  /** Writing a committed batch's overlay to the backing store failed; retried until it succeeds. */
  | (ServiceFields & {
      readonly event: 'flush-retry'
      readonly store: string
      readonly error: string
      readonly retryInMs: number
    })
  /** `run()` is about to resolve (or reject); the totals of this run. */
  | {
      readonly event: 'stopped'
      readonly batches: number
      readonly records: number
      readonly aborts: number
      readonly restores: number
      readonly deadLettered: number
    }

export type RuntimeEventName = RuntimeEvent['event']
