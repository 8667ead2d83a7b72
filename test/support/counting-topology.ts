/**
 * A hand-written ProcessorTopology for the runtime's own tests: per key, count the records seen and
 * emit `<key>,<seq>,<count>` to the output topic (same partition). The count lives in one store
 * (`counts`), so exactly-once shows in the output itself: for every key the outputs carry the
 * input sequence numbers in order, each once, with count = 1, 2, 3, … — a lost, duplicated or
 * aborted-but-visible record, or state that diverged from the outputs, breaks that sequence.
 *
 * Input record: key = entity key (UTF-8), value = decimal sequence number of that key's record.
 * A record with key `__marker__` is passed through unchanged (no state).
 */
import type { ProcessorTopology, SinkRecord, SourceRecord, TopicSpec } from '../../src/runtime/task.ts'
import type { StateStore } from '../../src/state/store.ts'

export const MARKER_KEY = '__marker__'

export function countingTopology(options: {
  applicationId: string
  input: string
  output: string
  outputPartitions?: number
}): ProcessorTopology {
  const { applicationId, input, output } = options
  const changelog = `${applicationId}-counts-changelog`
  const topics: TopicSpec[] = [
    { name: input, role: 'source', config: {} },
    { name: output, role: 'sink', config: {} },
    { name: changelog, role: 'changelog', config: { 'cleanup.policy': 'compact' }, store: 'counts' },
  ]
  return {
    applicationId,
    sourceTopics: [input],
    topics,
    storeNames: ['counts'],
    prefetchKeys(records: readonly SourceRecord[]) {
      const byPartition = new Map<number, Set<string>>()
      for (const r of records) {
        const key = r.key?.toString() ?? ''
        if (key === MARKER_KEY) continue
        let keys = byPartition.get(r.partition)
        if (!keys) byPartition.set(r.partition, (keys = new Set()))
        keys.add(key)
      }
      return new Map([['counts', byPartition]])
    },
    async process(records: readonly SourceRecord[], stores: ReadonlyMap<string, StateStore>): Promise<SinkRecord[]> {
      const counts = stores.get('counts')!
      const out: SinkRecord[] = []
      for (const r of records) {
        const key = r.key?.toString() ?? ''
        if (key === MARKER_KEY) {
          out.push({ topic: output, partition: r.partition, key: r.key, value: r.value })
          continue
        }
        const count = Number(counts.get(r.partition, key)?.toString() ?? '0') + 1
        counts.put(r.partition, key, Buffer.from(String(count)))
        out.push({
          topic: output,
          partition: r.partition,
          key: r.key,
          value: Buffer.from(`${key},${r.value?.toString()},${count}`),
        })
      }
      return out
    },
  }
}
