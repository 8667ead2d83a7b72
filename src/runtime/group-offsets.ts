/**
 * The two group-coordinator calls the exactly-once loop needs and the client library does not expose
 * in the form required:
 *
 * - OffsetFetch with `require_stable = true` (KIP-447): while another producer's transaction holds
 *   pending offsets for a partition, the coordinator answers UNSTABLE_OFFSET_COMMIT instead of the
 *   older committed offset. Without it, a new owner could start from an offset that a zombie's
 *   transaction is about to move, and process the same records twice.
 * - TxnOffsetCommit for every partition of the batch in one request, carrying the generation and
 *   member id the batch was *read* under, so the coordinator rejects the offsets of a member that has
 *   lost the partition in a rebalance (KIP-447 zombie fencing with a per-instance transactional id).
 *
 * And one the sink needs: a plain OffsetCommit that never rejoins the group (`commitGroupOffsets`).
 */
import { offsetCommitV8, offsetFetchV8, txnOffsetCommitV3, type Base, type Connection } from '@platformatic/kafka'
import type { Consumer } from '@platformatic/kafka'

export interface TopicPartitionOffset {
  readonly topic: string
  readonly partition: number
  /** The next offset to read. */
  readonly offset: bigint
}

async function coordinatorConnection(consumer: Consumer, client: Base = consumer): Promise<Connection> {
  const node = await consumer.findGroupCoordinator()
  const connections = await client.connectToBrokers([node])
  const connection = connections.get(node)
  if (!connection) throw new Error(`no connection to group coordinator ${node}`)
  return connection
}

/** Committed offsets (stable: no pending transactional offsets) for these partitions; -1n = none committed. */
export async function fetchStableOffsets(
  consumer: Consumer,
  partitions: readonly { topic: string; partition: number }[],
): Promise<Map<string, bigint>> {
  const byTopic = new Map<string, number[]>()
  for (const { topic, partition } of partitions) {
    const list = byTopic.get(topic) ?? []
    list.push(partition)
    byTopic.set(topic, list)
  }
  const connection = await coordinatorConnection(consumer)
  const response = await offsetFetchV8.api.async(
    connection,
    [
      {
        groupId: consumer.groupId,
        memberEpoch: -1,
        topics: [...byTopic].map(([name, partitionIndexes]) => ({ name, partitionIndexes })),
      },
    ],
    true,
  )
  const offsets = new Map<string, bigint>()
  for (const group of response.groups) {
    for (const topic of group.topics) {
      for (const p of topic.partitions) offsets.set(`${topic.name}:${p.partitionIndex}`, p.committedOffset)
    }
  }
  return offsets
}

/** Offsets as an offset commit's topics (each partition's next offset, no leader epoch). */
function committedTopics(offsets: readonly TopicPartitionOffset[]) {
  const byTopic = new Map<string, { partitionIndex: number; committedOffset: bigint; committedLeaderEpoch: number }[]>()
  for (const { topic, partition, offset } of offsets) {
    const list = byTopic.get(topic) ?? []
    list.push({ partitionIndex: partition, committedOffset: offset, committedLeaderEpoch: -1 })
    byTopic.set(topic, list)
  }
  return [...byTopic].map(([name, partitions]) => ({ name, partitions }))
}

/**
 * Commits these offsets for the consumer's group under its current generation: one OffsetCommit
 * request, nothing else (rejects if the coordinator refuses it). Not `Consumer.commit()`: on a
 * rebalance error that rejoins the group, and a member closing while others leave (the writers of
 * one `sink --writers` process stopping together) would rejoin under its own close, then heartbeat on
 * and keep the process alive. Does nothing when the consumer is not a member.
 */
export async function commitGroupOffsets(consumer: Consumer, offsets: readonly TopicPartitionOffset[]): Promise<void> {
  const memberId = consumer.memberId
  if (memberId === null || offsets.length === 0) return
  await offsetCommitV8.api.async(
    await coordinatorConnection(consumer),
    consumer.groupId,
    consumer.generationId,
    memberId,
    consumer.groupInstanceId,
    committedTopics(offsets),
  )
}

export interface GroupMembership {
  readonly groupId: string
  readonly generationId: number
  readonly memberId: string
}

/** Adds the batch's input offsets to the open transaction, fenced by the generation they were read under. */
export async function sendOffsetsToTransaction(
  consumer: Consumer,
  producer: Base,
  transaction: { transactionalId: string; producerId: bigint; producerEpoch: number },
  membership: GroupMembership,
  offsets: readonly TopicPartitionOffset[],
): Promise<void> {
  const connection = await coordinatorConnection(consumer, producer)
  await txnOffsetCommitV3.api.async(
    connection,
    transaction.transactionalId,
    membership.groupId,
    transaction.producerId,
    transaction.producerEpoch,
    membership.generationId,
    membership.memberId,
    null,
    committedTopics(offsets),
  )
}
