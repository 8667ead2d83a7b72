/**
 * `<join>` itself, on the left owner: a response is joined with the left row's current value and
 * emitted, unless its hash of the left row is stale (the row changed since the subscription was
 * sent; a newer response is on its way). Every output for a left key is thus emitted by the left
 * key's owner, in order.
 */
import { rowAppendTime, rowChangeTime } from '../../cdc/table-decoder.ts'
import { emitAt, NO_APPEND_TIME, type TopicEntry } from '../../topology/compiled.ts'
import { unpackRecords } from '../../topology/record-pack.ts'
import type { JoinContext } from './context.ts'
import { decodeResponse, leftHash, type Response } from './wire.ts'

export function responseJoin(ctx: JoinContext): TopicEntry {
  const { scope, isLeftJoin, emit, join } = ctx
  return {
    node: ctx.name,
    unpack: unpackRecords,
    decode: (record) => ({ key: record.key!.toString('utf8'), value: decodeResponse(record.value!) }),
    handle(record, decoded) {
      const response = decoded.value as Response
      const bytes = scope.stores.get(ctx.stores.left)!.get(record.partition, decoded.key)
      if (bytes === undefined || response.h !== leftHash(bytes)) return
      const left = ctx.readLeft(bytes, decoded.key)
      if (left === null) return
      const right =
        response.json === undefined ? response.v : response.json === null ? null : ctx.rightValue(response.json)
      // Event time: the later of the two rows' changes (Kafka Streams' table–table join rule). The
      // response carries its triggering change's time; rows that carry their lineage add their own.
      // A row's later time comes with that row's append time (-1 when it predates recording it).
      const leftAt = rowChangeTime(left) ?? 0
      const rightAt = rowChangeTime(right) ?? 0
      const later = rightAt > leftAt ? right : left
      emitAt(scope, Math.max(leftAt, rightAt), rowAppendTime(later) ?? NO_APPEND_TIME, () => {
        if (right !== null) emit(decoded.key, undefined, join(left, right))
        else emit(decoded.key, undefined, isLeftJoin ? join(left, null) : null)
      })
    },
  }
}
