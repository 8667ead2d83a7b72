/**
 * `<join>-right-change` and `<join>-right-receive`: a right row change is answered to every left row
 * subscribed to its key, read with one prefix scan of the subscription store.
 *
 * Subscriptions for right key k live at partition `partitionForString(k)`. A right row that arrived
 * on that partition fans out there. One that did not — its topic is partitioned by other key bytes,
 * e.g. a Debezium key `{"id":42}` decoded to `42` — is re-homed: forwarded on the right repartition
 * topic to partition `partitionForString(k)`, which keeps it in `<join>-right` and fans out. So the
 * join never depends on how producers partitioned the right topic.
 */
import { partitionForString } from '../../topology/partitioner.ts'
import type { ChangeHandler, TopicEntry } from '../../topology/compiled.ts'
import type { JoinContext } from './context.ts'

export function rightChange(ctx: JoinContext): { readonly change: ChangeHandler; readonly receive: TopicEntry } {
  const { scope, partitions, subscriptions, respond } = ctx

  const fanOut = (partition: number, key: string, right: Buffer | null): void => {
    for (const [leftKey, entry] of subscriptions.subscribers(partition, key))
      respond(leftKey, entry.partition, entry.hash, right)
  }

  const change: ChangeHandler = (key, _oldValue, newValue) => {
    const partition = scope.record.partition
    const home = partitionForString(key, partitions)
    // Straight after its table source, the new value is the one it just stored: reuse those bytes.
    const bytes =
      newValue === null
        ? null
        : ctx.rightGetter.raw === true && newValue === scope.encodedValue && scope.encodedBytes !== null
          ? scope.encodedBytes
          : ctx.userJson(newValue)
    if (home === partition) fanOut(partition, key, bytes)
    else scope.out.push({ topic: ctx.topics.right, partition: home, key: Buffer.from(key, 'utf8'), value: bytes })
  }

  // Right repartition topic → the partition the right key hashes to: keep the re-homed row, fan out.
  const receive: TopicEntry = {
    node: `${ctx.name}-right-receive`,
    // The value is the right row's JSON as the right owner encoded it: kept and answered with unparsed.
    decode: (record) => ({ key: record.key!.toString('utf8'), value: record.value }),
    handle(record, decoded) {
      const store = scope.stores.get(ctx.stores.rehomed)!
      // A copy: the record's bytes are a view into the whole fetch response, which a store must not pin.
      const bytes = decoded.value === null ? null : Buffer.from(decoded.value as Buffer)
      if (bytes === null) store.delete(record.partition, decoded.key)
      else store.put(record.partition, decoded.key, bytes)
      fanOut(record.partition, decoded.key, bytes)
    },
  }
  return { change, receive }
}
