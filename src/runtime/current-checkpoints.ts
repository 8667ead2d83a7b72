/**
 * Which store partitions of a new assignment need no restore, found in one pass.
 *
 * A store partition is current when its Redis checkpoint is the end of its changelog partition —
 * equal to the last stable offset and to the high watermark (nothing after it, no transaction open
 * on it) — and lies inside the log. That is exactly the case in which the restorer
 * (src/state/changelog.ts) replays nothing and writes nothing. Redis is shared, so a task that moves
 * to another instance is almost always current; checked one store partition after the other (a
 * Redis read and three ListOffsets each), the check alone was most of a rebalance's pause: 0.5–3 s
 * for the 33 store partitions of 3 tasks of the reference topology on the 2-core machine
 * (bench/elasticity.ts timelines). Here every checkpoint is read at once, then three ListOffsets
 * cover every changelog partition; whatever is not proven current goes through the restorer.
 *
 * The checkpoints are read before the offsets, as the restorer does: a checkpoint is written only
 * after its transaction committed, so one read before the offsets is never beyond them.
 */
import { FetchIsolationLevels, ListOffsetTimestamps, type Consumer } from '@platformatic/kafka'
import type { StateStore } from '../state/store.ts'

/** `store:partition` → checkpoint, for the store partitions whose checkpoint is their changelog's end. */
export async function currentCheckpoints(
  consumer: Pick<Consumer, 'listOffsets'>,
  stores: ReadonlyMap<string, StateStore>,
  changelogs: ReadonlyMap<string, string>,
  tasks: readonly number[],
): Promise<Map<string, bigint>> {
  const current = new Map<string, bigint>()
  if (tasks.length === 0 || stores.size === 0) return current
  const wanted = [...stores].flatMap(([name, store]) =>
    tasks.map((partition) => ({ name, store, partition, topic: changelogs.get(name)! })),
  )
  const checkpoints = await Promise.all(wanted.map((w) => w.store.checkpoint(w.partition)))
  const topics = [...new Set(wanted.map((w) => w.topic))]
  const partitions = Object.fromEntries(topics.map((topic) => [topic, [...tasks]]))
  const list = (timestamp: bigint, isolationLevel: number) =>
    consumer.listOffsets({ topics, partitions, timestamp, isolationLevel })
  const [logStart, stable, high] = await Promise.all([
    list(ListOffsetTimestamps.EARLIEST, FetchIsolationLevels.READ_COMMITTED),
    list(ListOffsetTimestamps.LATEST, FetchIsolationLevels.READ_COMMITTED),
    list(ListOffsetTimestamps.LATEST, FetchIsolationLevels.READ_UNCOMMITTED),
  ])
  wanted.forEach(({ name, partition, topic }, i) => {
    const checkpoint = checkpoints[i]
    const start = logStart.get(topic)?.[partition]
    const end = stable.get(topic)?.[partition]
    if (checkpoint === undefined || start === undefined || end === undefined) return
    if (checkpoint >= start && checkpoint === end && end === high.get(topic)?.[partition])
      current.set(`${name}:${partition}`, checkpoint)
  })
  return current
}
