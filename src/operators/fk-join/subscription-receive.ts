/**
 * `<join>-subscription-receive`, on the right owner (the task of the foreign key's partition): keeps
 * the subscription entry of (right key, left key) and answers the subscription with the right row
 * on the response repartition topic, at the left partition.
 */
import type { SourceRecord } from '../../runtime/task.ts'
import type { TopicEntry } from '../../topology/compiled.ts'
import type { DecodedRecord } from '../../topology/graph.ts'
import { unpackRecords } from '../../topology/record-pack.ts'
import type { JoinContext } from './context.ts'
import { PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE, UNSUBSCRIBE, decodeSubscription, type Subscription } from './wire.ts'

/** The right row for `key` as JSON bytes (null = no row), read where it lives on this partition. */
export function rightRowAt(ctx: JoinContext, partition: number, key: string): Buffer | null {
  const { scope } = ctx
  // It lives either in its table's store here (it arrived on this partition) or, re-homed, in `<join>-right`.
  const rehomed = scope.stores.get(ctx.stores.rehomed)!.get(partition, key)
  if (rehomed !== undefined) return rehomed
  const stored = scope.stores.get(ctx.stores.rightRoot)!.get(partition, key)
  // The stored bytes are the value's JSON when no filter/mapValues sits between.
  if (ctx.rightGetter.raw === true) return stored ?? null
  const right = ctx.readRight(stored, key)
  return right === null ? null : ctx.userJson(right)
}

export function subscriptionReceive(ctx: JoinContext): TopicEntry {
  const { subscriptions, respond } = ctx
  return {
    node: `${ctx.name}-subscription-receive`,
    unpack: unpackRecords,
    decode: (record: SourceRecord): DecodedRecord => ({
      key: record.key!.toString('utf8'),
      value: decodeSubscription(record.value!),
    }),
    handle(record, decoded) {
      const sub = decoded.value as Subscription
      if (sub.i === UNSUBSCRIBE) {
        subscriptions.delete(record.partition, decoded.key, sub.k)
        return
      }
      // Read the right row first: user code in the right input's chain may throw, and then nothing changed.
      const right = rightRowAt(ctx, record.partition, decoded.key)
      // The same subscription again (an unchanged left row re-sent, e.g. a CDC snapshot re-read) writes nothing.
      subscriptions.set(record.partition, decoded.key, sub.k, sub.p, sub.h)
      if (right === null && sub.i === PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE) return
      respond(sub.k, sub.p, sub.h, right)
    },
  }
}
