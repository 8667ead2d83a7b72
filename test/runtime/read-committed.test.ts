// read_committed filtering of fetched record batches (pure; the wire format is the broker's), and
// the runtime's reader against the real broker.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { RecordsBatch } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { committedRecords } from '../../src/runtime/read-committed.ts'
import { readCommitted, writeAbortCommitEmptyAbort } from '../support/runtime-harness.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

const TRANSACTIONAL = 0x10
const CONTROL = 0x20

function data(producerId: bigint, firstOffset: bigint, values: string[]): RecordsBatch {
  return {
    firstOffset,
    length: 0,
    partitionLeaderEpoch: 0,
    magic: 2,
    crc: 0,
    attributes: TRANSACTIONAL,
    lastOffsetDelta: values.length - 1,
    firstTimestamp: 1000n,
    maxTimestamp: 1000n,
    producerId,
    producerEpoch: 0,
    firstSequence: 0,
    records: values.map((v, i) => ({
      length: 0,
      attributes: 0,
      timestampDelta: BigInt(i),
      offsetDelta: i,
      key: Buffer.from('k'),
      value: Buffer.from(v),
      headers: [],
    })),
  }
}

function marker(producerId: bigint, offset: bigint, commit: boolean): RecordsBatch {
  const key = Buffer.alloc(4)
  key.writeInt16BE(0, 0)
  key.writeInt16BE(commit ? 1 : 0, 2)
  return {
    ...data(producerId, offset, ['']),
    attributes: TRANSACTIONAL | CONTROL,
    records: [{ length: 0, attributes: 0, timestampDelta: 0n, offsetDelta: 0, key, value: null, headers: [] }],
  }
}

test('read_committed: every aborted transaction of a producer is dropped, committed ones and other producers kept, position passes markers', () => {
  // One producer id (a restarted instance reusing its transactional id) aborts twice around a commit.
  const batches = [
    data(7n, 0n, ['a1', 'a2']),
    marker(7n, 2n, false),
    data(7n, 3n, ['c1']),
    data(9n, 4n, ['other']),
    marker(7n, 5n, true),
    data(7n, 6n, ['a3']),
    marker(7n, 7n, false),
  ]
  const aborted = [
    { producerId: 7n, firstOffset: 6n },
    { producerId: 7n, firstOffset: 0n },
  ]
  const result = committedRecords('t', 0, 0n, batches, aborted)
  assert.deepEqual(
    result.records.map((r) => r.value?.toString()),
    ['c1', 'other'],
  )
  assert.deepEqual(
    result.records.map((r) => r.offset),
    [3n, 4n],
  )
  assert.equal(result.nextOffset, 8n)
})

test('read_committed: records before the fetch offset are skipped, an aborted transaction cut off before its marker stays dropped', () => {
  const batches = [data(1n, 10n, ['x', 'y', 'z']), data(2n, 13n, ['open-aborted'])]
  const result = committedRecords('t', 3, 11n, batches, [{ producerId: 2n, firstOffset: 13n }])
  assert.deepEqual(
    result.records.map((r) => [r.offset, r.value?.toString(), r.partition]),
    [
      [11n, 'y', 3],
      [12n, 'z', 3],
    ],
  )
  assert.equal(result.nextOffset, 14n)
  assert.equal(result.records[0].timestamp, 1001n)
})

test(
  'read_committed against the broker: a producer id that aborted, committed, then aborted without records in the partition keeps its committed records',
  { timeout: 30_000 },
  async (t) => {
    await checkKafka(endpoints)
    const topic = uniqueName('rc-abort-commit')
    await createTopics(t, [topic], 1)
    const expected = await writeAbortCommitEmptyAbort(t, topic)
    // readCommitted reads with the runtime's PartitionReader; the last committed record comes after every marker.
    const records = await readCommitted(topic, 1, (r) => r.some((x) => x.value?.toString() === expected.at(-1)), 15_000)
    assert.deepEqual(
      records.map((r) => r.value?.toString()),
      expected,
    )
  },
)
