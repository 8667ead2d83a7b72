/**
 * Kafka's default partitioner: `toPositive(murmur2(keyBytes)) % partitions`, bit for bit as in the
 * Java client (`Utils.murmur2`, `BuiltInPartitioner.partitionForKey`). The Kafka runtime and the test
 * driver both place records with it, so a key lands on the same partition under test and in
 * production, and on the partition a Java or librdkafka producer with the default partitioner chose.
 *
 * Note: `@platformatic/kafka`'s own default partitioner uses `murmur2 >>> 0`, which is NOT Kafka's
 * mapping; ragstream always sets the partition of every record it produces explicitly.
 */

const SEED = 0x9747b28c
const M = 0x5bd1e995

/** Kafka's murmur2 (32-bit, seed 0x9747b28c) of the key bytes, as a signed 32-bit integer. */
export function murmur2(data: Uint8Array): number {
  const length = data.length
  let h = SEED ^ length
  const whole = length & ~3
  for (let i = 0; i < whole; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
    k = Math.imul(k, M)
    k ^= k >>> 24
    k = Math.imul(k, M)
    h = Math.imul(h, M)
    h ^= k
  }
  const rest = length & 3
  if (rest > 0) {
    if (rest === 3) h ^= data[whole + 2] << 16
    if (rest >= 2) h ^= data[whole + 1] << 8
    h ^= data[whole]
    h = Math.imul(h, M)
  }
  h ^= h >>> 13
  h = Math.imul(h, M)
  h ^= h >>> 15
  return h | 0
}

/** The partition Kafka's default partitioner picks for these key bytes. */
export function partitionForKey(key: Uint8Array, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions
}

/** The partition of a string key, hashed over its UTF-8 bytes. */
export function partitionForString(key: string, partitions: number): number {
  return partitionForKey(Buffer.from(key, 'utf8'), partitions)
}
