/**
 * What every role of one compiled FK join shares: its names, the scope, the user functions wrapped
 * once (src/topology/user-code.ts), and the two ways it writes to its repartition topics.
 */
import { RagstreamError } from '../../errors.ts'
import type { ChangeHandler, RecordScope, ValueGetter } from '../../topology/compiled.ts'
import type { FkJoinNode } from '../../topology/graph.ts'
import { decodeJson, encodeJson } from '../../topology/json.ts'
import { partitionForString } from '../../topology/partitioner.ts'
import { userFunction } from '../../topology/user-code.ts'
import type { SubscriptionStore } from './subscription-store.ts'
import { responseBytes, subscriptionBytes } from './wire.ts'

export interface JoinContext {
  readonly name: string
  readonly scope: RecordScope
  readonly partitions: number
  readonly isLeftJoin: boolean
  readonly leftGetter: ValueGetter
  readonly rightGetter: ValueGetter
  readonly stores: {
    /** The left table's store (its root), read by the response join. */
    readonly left: string
    /** The right table's store (its root), read by the subscription receiver. */
    readonly rightRoot: string
    /** `<join>-subscriptions`: one entry per (right key, left key). */
    readonly subscriptions: string
    /** `<join>-right`: right rows re-homed to their key's partition. */
    readonly rehomed: string
  }
  readonly topics: { readonly subscription: string; readonly response: string; readonly right: string }
  readonly subscriptions: SubscriptionStore
  /** The join's output: to the consumers, through the join's own store when it is materialized. */
  readonly emit: ChangeHandler
  /** User code, wrapped: a throw is the record's failure. */
  readonly foreignKeyOf: (left: unknown) => string | null
  readonly join: (left: unknown, right: unknown) => unknown
  /** JSON of a value user code built (a joiner's, a mapper's): not being JSON is that record's failure. */
  readonly userJson: (value: unknown) => Buffer
  /** A response's right row: JSON we wrote, so a parse failure is that record's (dead-lettered), never a retry. */
  readonly rightValue: (json: Buffer) => unknown
  readonly readLeft: (bytes: Buffer | undefined, key: string) => unknown
  readonly readRight: (bytes: Buffer | undefined, key: string) => unknown
  /** Subscriptions and responses go to scope.out as records of their own (so a failing record takes its own back with it); the end of the batch packs them. */
  subscribe(fk: string, instruction: number, leftKey: string, leftPartition: number, leftHash: string | null): void
  /** `right`: the right row's value as JSON bytes (null = no row), encoded once however many left keys it answers. */
  respond(leftKey: string, leftPartition: number, leftHash: string | null, right: Buffer | null): void
}

export function userFunctionsOf(
  node: FkJoinNode,
  leftGetter: ValueGetter,
  rightGetter: ValueGetter,
): Pick<JoinContext, 'foreignKeyOf' | 'join' | 'userJson' | 'rightValue' | 'readLeft' | 'readRight'> {
  const { name, foreignKey, joiner } = node
  return {
    foreignKeyOf: userFunction(name, (left: unknown): string | null => {
      const fk = foreignKey(left)
      if (fk !== null && fk !== undefined && typeof fk !== 'string')
        throw new RagstreamError('RS_RECORD_INVALID', `the foreign key must be a string, got ${typeof fk}`)
      return fk ?? null
    }),
    join: userFunction(name, (left: unknown, right: unknown): unknown => joiner(left, right) ?? null),
    userJson: userFunction(name, encodeJson),
    rightValue: userFunction(name, decodeJson),
    readLeft: userFunction(name, (bytes: Buffer | undefined, key: string) => leftGetter.get(bytes, key)),
    readRight: userFunction(name, (bytes: Buffer | undefined, key: string) => rightGetter.get(bytes, key)),
  }
}

export function repartitionWriters(
  scope: RecordScope,
  partitions: number,
  topics: JoinContext['topics'],
): Pick<JoinContext, 'subscribe' | 'respond'> {
  return {
    subscribe(fk, instruction, leftKey, leftPartition, leftHash) {
      scope.out.push({
        topic: topics.subscription,
        partition: partitionForString(fk, partitions),
        key: Buffer.from(fk, 'utf8'),
        value: subscriptionBytes(instruction, leftKey, leftPartition, leftHash),
      })
    },
    respond(leftKey, leftPartition, leftHash, right) {
      scope.out.push({
        topic: topics.response,
        partition: leftPartition,
        key: Buffer.from(leftKey, 'utf8'),
        value: responseBytes(leftHash, right),
      })
    },
  }
}
