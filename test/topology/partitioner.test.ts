import assert from 'node:assert/strict'
import { test } from 'node:test'
import { murmur2, partitionForKey, partitionForString } from '../../src/topology/partitioner.ts'

test('murmur2 matches the Java client (Kafka UtilsTest vectors)', () => {
  const vectors: [string, number][] = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ]
  for (const [input, expected] of vectors) assert.equal(murmur2(Buffer.from(input)), expected, input)
})

test("the partition is toPositive(murmur2) % partitions, as Kafka's default partitioner", () => {
  assert.equal(partitionForString('21', 7), (-973932308 & 0x7fffffff) % 7)
  for (let i = 0; i < 200; i++) {
    const key = `key-${i}-${'x'.repeat(i % 9)}`
    const partition = partitionForKey(Buffer.from(key), 12)
    assert.ok(partition >= 0 && partition < 12)
    assert.equal(partitionForString(key, 12), partition)
  }
})
