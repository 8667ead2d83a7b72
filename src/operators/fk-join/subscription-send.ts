/**
 * `<join>-subscription-send`, on the left owner (the task of the left key's partition): a left row
 * change sends a subscription, keyed by its foreign key, to the subscription repartition topic; a
 * foreign key moving from a to b unsubscribes from a. A left join answers a row without a foreign key
 * at once (joined with null); a left delete emits a tombstone.
 */
import type { ChangeHandler } from '../../topology/compiled.ts'
import type { JoinContext } from './context.ts'
import { PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE, UNSUBSCRIBE, leftHash } from './wire.ts'

export function subscriptionSend(ctx: JoinContext): ChangeHandler {
  const { scope, isLeftJoin, emit, foreignKeyOf, join, subscribe } = ctx
  return (key, oldValue, newValue) => {
    // A materialized join upstream may pass a tombstone for a row it never had.
    if (newValue === null && (oldValue === null || oldValue === undefined)) return
    const partition = scope.record.partition
    const oldFk = oldValue === null || oldValue === undefined ? null : foreignKeyOf(oldValue)
    if (newValue === null) {
      emit(key, undefined, null)
      if (oldFk !== null) subscribe(oldFk, UNSUBSCRIBE, key, partition, null)
      return
    }
    const newFk = foreignKeyOf(newValue)
    if (oldFk !== null && oldFk !== newFk) subscribe(oldFk, UNSUBSCRIBE, key, partition, null)
    if (newFk === null) {
      if (isLeftJoin) emit(key, undefined, join(newValue, null))
      else if (oldValue !== null) emit(key, undefined, null)
      return
    }
    const bytes = scope.stores.get(ctx.stores.left)!.get(partition, key)
    // Always answered, also for an inner join's new row with no right row (Kafka Streams sends
    // PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE there and gets no answer): the stale-response check compares
    // hashes of the left row's bytes, so a row that returns to identical bytes (o→p1, o→p3, o→p1) makes
    // a response to its first subscription, still in flight on the response topic, look current. With
    // no answer to the new subscription, that stale join result was the key's last output for good (the
    // seeded differential test found it: RAGSTREAM_DIFF_SEED=845164966). The answer comes after the
    // stale one on the same response partition and overrides it; when nothing was emitted before, it is
    // a tombstone of a key the output table does not hold.
    const instruction = PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE
    subscribe(newFk, instruction, key, partition, bytes === undefined ? null : leftHash(bytes))
  }
}
