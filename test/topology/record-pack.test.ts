import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RagstreamError } from '../../src/errors.ts'
import type { SinkRecord, SourceRecord } from '../../src/runtime/task.ts'
import { packRecords, packTopic, unpackRecords } from '../../src/topology/record-pack.ts'

function sourceOf(value: Buffer | null, key: Buffer | null = null): SourceRecord {
  return { topic: 't', partition: 2, offset: 41n, timestamp: 7n, headers: new Map(), key, value }
}

const item = (partition: number, key: string, value: string | null, topic = 't'): SinkRecord => ({
  topic,
  partition,
  key: Buffer.from(key),
  value: value === null ? null : Buffer.from(value),
})

test('a pack round-trips its items in order, null values and empty keys included, at the pack’s coordinates', () => {
  const items = [item(2, 'a', 'one'), item(2, '', 'two'), item(2, 'ü', null)]
  const unpacked = unpackRecords(sourceOf(packRecords(items)))
  assert.deepEqual(
    unpacked.map((r) => [r.key?.toString(), r.value?.toString() ?? null]),
    [
      ['a', 'one'],
      ['', 'two'],
      ['ü', null],
    ],
  )
  for (const r of unpacked) assert.deepEqual([r.topic, r.partition, r.offset, r.timestamp], ['t', 2, 41n, 7n])
})

test('a record in the earlier JSON format is read as itself', () => {
  const record = sourceOf(Buffer.from('{"i":1}'), Buffer.from('fk'))
  assert.deepEqual(unpackRecords(record), [record])
})

test('a truncated or unknown pack is a decode failure', () => {
  const bytes = packRecords([item(0, 'key', 'value')])
  for (const broken of [bytes.subarray(0, bytes.length - 2), Buffer.from([9, 0, 0, 0, 1]), Buffer.alloc(0)]) {
    assert.throws(
      () => unpackRecords(sourceOf(broken)),
      (e: unknown) => e instanceof RagstreamError && e.code === 'RS_DECODE_FAILED',
    )
  }
})

test('packTopic packs one topic per partition, in order, at most perPack items a record, and leaves other records alone', () => {
  const out: SinkRecord[] = [
    item(0, 'x', '1', 'other'),
    item(1, 'a', '1'),
    item(0, 'b', '1'),
    item(1, 'c', '1'),
    item(1, 'd', '1'),
    item(0, 'y', '2', 'other'),
  ]
  packTopic(out, 't', 2)
  assert.deepEqual(
    out.filter((r) => r.topic === 'other').map((r) => r.key?.toString()),
    ['x', 'y'],
  )
  const packs = out.filter((r) => r.topic === 't')
  assert.deepEqual(
    packs.map((r) => [r.partition, r.key, unpackRecords(sourceOf(r.value)).map((i) => i.key?.toString())]),
    [
      [1, null, ['a', 'c']],
      [1, null, ['d']],
      [0, null, ['b']],
    ],
  )
})

test('packTopic closes a pack at maxBytes of keys and values, so large right rows never make a record the broker refuses', () => {
  const big = 'v'.repeat(100)
  const out: SinkRecord[] = [
    item(0, 'a', big),
    item(0, 'b', big),
    item(0, 'c', big),
    item(0, 'd', 'v'.repeat(500)),
    item(0, 'e', big),
  ]
  packTopic(out, 't', 16, 250)
  assert.deepEqual(
    out.map((r) => unpackRecords(sourceOf(r.value)).map((i) => i.key?.toString())),
    [['a', 'b'], ['c'], ['d'], ['e']],
    'a, b fit in 250 bytes; c would not; d alone exceeds the bound and is a pack of its own',
  )
})

test("each item carries its own origin through the pack; a version-1 pack's items have none", () => {
  const origin = (offset: bigint) => ({
    topic: 'src',
    partition: 4,
    offset,
    timestamp: 9n,
    key: Buffer.from(`k${offset}`),
  })
  const items = [
    { ...item(2, 'a', 'one'), source: origin(10n) },
    item(2, 'b', 'two'),
    { ...item(2, 'c', null), source: origin(12n) },
  ]
  const unpacked = unpackRecords(sourceOf(packRecords(items)))
  assert.deepEqual(
    unpacked.map((r) => r.origin),
    [origin(10n), undefined, origin(12n)],
  )
  // Version 1 (before origins): 0x01 | count | (key length | key | value length | value)…
  const v1 = Buffer.concat([
    Buffer.from([1, 0, 0, 0, 1, 0, 0, 0, 1]),
    Buffer.from('a'),
    Buffer.from([0, 0, 0, 1]),
    Buffer.from('v'),
  ])
  assert.deepEqual(
    unpackRecords(sourceOf(v1)).map((r) => [r.key?.toString(), r.value?.toString(), r.origin]),
    [['a', 'v', undefined]],
  )
})

test('each item carries its own event time; the pack is stamped with the latest, and an item without one reads the pack’s', () => {
  const timed = (key: string, timestamp?: bigint): SinkRecord => ({
    ...item(2, key, 'v'),
    ...(timestamp !== undefined ? { timestamp } : {}),
  })
  const out = [timed('a', 5_000n), timed('b', 9_000n), timed('c')]
  packTopic(out, 't', 16)
  assert.equal(out.length, 1)
  assert.equal(out[0].timestamp, 9_000n)
  const unpacked = unpackRecords({ ...sourceOf(out[0].value), timestamp: 9_000n })
  assert.deepEqual(
    unpacked.map((r) => [r.key?.toString(), r.timestamp]),
    [
      ['a', 5_000n],
      ['b', 9_000n],
      ['c', 9_000n],
    ],
  )
})

test('each item carries its change’s append time: a known one, unknown (-1), or none (its origin’s); a version-3 pack’s items have none', () => {
  const appended = (key: string, appendedAt?: number): SinkRecord => ({
    ...item(2, key, 'v'),
    timestamp: 1_000n,
    ...(appendedAt !== undefined ? { appendedAt } : {}),
  })
  const out = [appended('a', 1_250), appended('b', -1), appended('c')]
  packTopic(out, 't', 16)
  const unpacked = unpackRecords(sourceOf(out[0].value))
  assert.deepEqual(
    unpacked.map((r) => [r.key?.toString(), r.appendedAt]),
    [
      ['a', 1_250],
      ['b', -1],
      ['c', undefined],
    ],
  )
  // Version 3 (written before append times): the same bytes without the trailing i64 per item.
  const v3 = Buffer.from(out[0].value!)
  const items: Buffer[] = [Buffer.from([0x03]), v3.subarray(1, 5)]
  let at = 5
  for (let n = 0; n < 3; n++) {
    const start = at
    at += 4 + v3.readUInt32BE(at)
    at += 4 + v3.readUInt32BE(at)
    at += 4 + v3.readUInt32BE(at)
    at += 8
    items.push(v3.subarray(start, at))
    at += 8
  }
  const old = unpackRecords(sourceOf(Buffer.concat(items)))
  assert.deepEqual(
    old.map((r) => [r.key?.toString(), r.timestamp, 'appendedAt' in r]),
    [
      ['a', 1_000n, false],
      ['b', 1_000n, false],
      ['c', 1_000n, false],
    ],
  )
})
