/**
 * `fk-join`: KTable–KTable foreign-key join, as Kafka Streams' KIP-213. This file is the node kind
 * (validation, stores, topics, describe) and wires the roles, each in its own file named like the
 * node `describe` prints:
 *
 *   subscription-send.ts     left owner: a left change subscribes to its foreign key (and unsubscribes from the old one)
 *   subscription-receive.ts  right owner: keeps one subscription entry per (right key, left key), answers with the right row
 *   right-change.ts          right owner: a right change is answered to every subscriber (one prefix scan)
 *   response-join.ts         left owner: drops stale answers, joins with the current left row, emits
 *   subscription-store.ts    the per-entry subscription store (and the migration from the list layout)
 *   wire.ts                  the bytes on the repartition topics and in the subscription store
 *
 * Inner vs left, as in Kafka Streams: a left join emits `joiner(left, null)` when the right row is
 * missing or deleted, an inner join emits a tombstone (also for a brand-new row: subscription-send.ts says
 * why Kafka Streams' "nothing" is not enough); left deletes
 * (and rows filtered out upstream) emit a tombstone in both.
 *
 * Bounded: every record and store value the join writes is bounded by one row (a subscription, an
 * entry, a response carrying one right row), never by the number of left rows sharing a right key.
 */
import type { ChangeHandler } from '../../topology/compiled.ts'
import { CHANGELOG_CONFIG, REPARTITION_CONFIG, type InternalTopic, type NodeKindSpec } from '../../topology/compiled.ts'
import {
  changelogTopic,
  responseTopic,
  rightRepartitionTopic,
  rightStore,
  subscriptionStore,
  subscriptionTopic,
  type FkJoinNode,
  type JoinType,
  type TopologyGraph,
} from '../../topology/graph.ts'
import { decodeJson } from '../../topology/json.ts'
import { packTopic } from '../../topology/record-pack.ts'
import { repartitionWriters, userFunctionsOf, type JoinContext } from './context.ts'
import { rightChange } from './right-change.ts'
import { responseJoin } from './response-join.ts'
import { subscriptionReceive } from './subscription-receive.ts'
import { subscriptionSend } from './subscription-send.ts'
import { SubscriptionStore } from './subscription-store.ts'
import { PER_PACK, type Subscription } from './wire.ts'
import { factsOf, tableRoot } from '../../topology/node-kinds.ts'

interface JoinOptionsBase<L> {
  /** Required: names the subscription store, its changelog and the two repartition topics. */
  readonly name: string
  /** The right table's key this left row points at; null/undefined = points nowhere. */
  readonly foreignKey: (left: L) => string | null | undefined
}

/** Inner join: rows without a matching right row produce no output. */
export interface InnerJoinOptions<L, R, O> extends JoinOptionsBase<L> {
  readonly type?: 'inner'
  readonly joiner: (left: L, right: R) => O
}

/** Left join: every left row produces output; `right` is null while no right row matches. */
export interface LeftJoinOptions<L, R, O> extends JoinOptionsBase<L> {
  readonly type: 'left'
  readonly joiner: (left: L, right: R | null) => O
}

export function fkJoinNode(
  name: string,
  named: boolean,
  left: string,
  right: string,
  joinType: JoinType,
  foreignKey: FkJoinNode['foreignKey'],
  joiner: FkJoinNode['joiner'],
): FkJoinNode {
  return Object.freeze({
    kind: 'fk-join',
    name,
    named,
    inputs: Object.freeze([left, right]),
    joinType,
    foreignKey,
    joiner,
  })
}

/** A join's result is materialized (in a store named after the join) only when another join reads it. */
function isMaterialized(graph: TopologyGraph, join: string): boolean {
  return graph.nodes.some(
    (n) => factsOf(n).readsTables === true && n.inputs.some((input) => tableRoot(graph, input) === join),
  )
}

function internalTopicsOf(node: FkJoinNode, app: string, materialized: boolean): InternalTopic[] {
  return [
    ...(materialized
      ? [
          {
            name: changelogTopic(app, node.name),
            role: 'changelog' as const,
            store: node.name,
            purpose: `changelog of store ${node.name} (the join result, read by another join)`,
            config: CHANGELOG_CONFIG,
          },
        ]
      : []),
    {
      name: changelogTopic(app, subscriptionStore(node.name)),
      role: 'changelog' as const,
      store: subscriptionStore(node.name),
      purpose: `changelog of store ${subscriptionStore(node.name)}`,
      config: CHANGELOG_CONFIG,
    },
    {
      name: changelogTopic(app, rightStore(node.name)),
      role: 'changelog' as const,
      store: rightStore(node.name),
      purpose: `changelog of store ${rightStore(node.name)}`,
      config: CHANGELOG_CONFIG,
    },
    {
      name: subscriptionTopic(app, node.name),
      role: 'repartition' as const,
      purpose: `${node.name} subscriptions, keyed by foreign key`,
      config: REPARTITION_CONFIG,
    },
    {
      name: responseTopic(app, node.name),
      role: 'repartition' as const,
      purpose: `${node.name} responses, keyed by left key`,
      config: REPARTITION_CONFIG,
    },
    {
      name: rightRepartitionTopic(app, node.name),
      role: 'repartition' as const,
      purpose: `${node.name} right rows not on their key's partition, keyed by right key`,
      config: REPARTITION_CONFIG,
    },
  ]
}

export const fkJoinOperator: NodeKindSpec<FkJoinNode> = {
  facts: { stateful: true, table: 'root', readsTables: true },
  validate(node, graph, problem) {
    if (node.joinType !== 'inner' && node.joinType !== 'left') problem('type', `must be 'inner' or 'left'`)
    if (typeof node.foreignKey !== 'function') problem('foreignKey', 'required: a function (leftValue) => rightKey')
    if (typeof node.joiner !== 'function')
      problem('joiner', 'required: a function (leftValue, rightValue) => joinedValue')
    node.inputs.forEach((input, slot) => {
      if (graph.nodes.some((n) => n.name === input) && tableRoot(graph, input) === undefined) {
        problem(
          `inputs/${slot}`,
          `'${input}' must be a table (a source or a join result, then filter/mapValues only); a stage's output cannot be joined`,
        )
      }
    })
  },
  stores: (node, graph) => [
    ...(isMaterialized(graph, node.name) ? [node.name] : []),
    subscriptionStore(node.name),
    rightStore(node.name),
  ],
  internalTopics: (node, graph) => internalTopicsOf(node, graph.applicationId, isMaterialized(graph, node.name)),
  getter: (node, graph, upstream) => ({
    store: node.name,
    // A join's result changes on its response records and on its left input's own records (direct emissions).
    topics: [responseTopic(graph.applicationId, node.name), ...upstream(node.inputs[0]).topics],
    raw: true,
    get: (bytes) => (bytes === undefined ? null : decodeJson(bytes)),
  }),
  physical(node, graph) {
    const { name } = node
    const app = graph.applicationId
    const rightRoot = tableRoot(graph, node.inputs[1]) ?? node.inputs[1]
    const leftRoot = tableRoot(graph, node.inputs[0]) ?? node.inputs[0]
    return {
      nodes: [
        { type: 'processor', name: `${name}-subscription-send`, stores: [], next: [`${name}-subscription-sink`, name] },
        { type: 'sink', name: `${name}-subscription-sink`, topic: subscriptionTopic(app, name), next: [] },
        {
          type: 'source',
          name: `${name}-subscription-source`,
          topics: [subscriptionTopic(app, name)],
          next: [`${name}-subscription-receive`],
        },
        {
          type: 'processor',
          name: `${name}-subscription-receive`,
          stores: [subscriptionStore(name), rightRoot, rightStore(name)],
          next: [`${name}-response-sink`],
        },
        {
          type: 'processor',
          name: `${name}-right-change`,
          stores: [subscriptionStore(name)],
          next: [`${name}-response-sink`, `${name}-right-sink`],
        },
        { type: 'sink', name: `${name}-right-sink`, topic: rightRepartitionTopic(app, name), next: [] },
        {
          type: 'source',
          name: `${name}-right-source`,
          topics: [rightRepartitionTopic(app, name)],
          next: [`${name}-right-receive`],
        },
        {
          type: 'processor',
          name: `${name}-right-receive`,
          stores: [subscriptionStore(name), rightStore(name)],
          next: [`${name}-response-sink`],
        },
        { type: 'sink', name: `${name}-response-sink`, topic: responseTopic(app, name), next: [] },
        { type: 'source', name: `${name}-response-source`, topics: [responseTopic(app, name)], next: [name] },
        {
          type: 'processor',
          name,
          stores: isMaterialized(graph, name) ? [leftRoot, name] : [leftRoot],
          detail: `fk-join: ${node.joinType}`,
          next: [],
        },
      ],
      entries: [`${name}-subscription-send`, `${name}-right-change`],
      exit: name,
    }
  },
  compile(node, env) {
    const { scope, partitions } = env
    const { name } = node
    const app = env.graph.applicationId
    const leftGetter = env.getter(node.inputs[0])
    const rightGetter = env.getter(node.inputs[1])
    const stores = {
      left: leftGetter.store,
      rightRoot: rightGetter.store,
      subscriptions: subscriptionStore(name),
      rehomed: rightStore(name),
    }
    const topics = {
      subscription: subscriptionTopic(app, name),
      response: responseTopic(app, name),
      right: rightRepartitionTopic(app, name),
    }
    const downstream = env.downstream(name)
    const materialized = isMaterialized(env.graph, name)
    const users = userFunctionsOf(node, leftGetter, rightGetter)
    // Materialized (another join reads this result): keep it in the store named after the join, and
    // pass downstream the real old value. The store key's partition is the left key's (this task's).
    const emit: ChangeHandler = !materialized
      ? downstream
      : (key, _oldValue, newValue) => {
          const store = scope.stores.get(name)!
          const partition = scope.record.partition
          const oldBytes = store.get(partition, key)
          scope.undo.remember(store, partition, key, oldBytes)
          if (newValue === null) store.delete(partition, key)
          else store.put(partition, key, users.userJson(newValue))
          downstream(key, oldBytes === undefined ? null : decodeJson(oldBytes), newValue)
        }
    const ctx: JoinContext = {
      name,
      scope,
      partitions,
      isLeftJoin: node.joinType === 'left',
      leftGetter,
      rightGetter,
      stores,
      topics,
      subscriptions: new SubscriptionStore(scope, stores.subscriptions),
      emit,
      ...users,
      ...repartitionWriters(scope, partitions, topics),
    }

    // Every store read of every role, prefetched with the batch (one round trip per store partition).
    if (materialized) {
      env.addPrefetch(topics.response, name)
      for (const topic of leftGetter.topics) env.addPrefetch(topic, name)
    }
    env.addPrefetch(topics.response, stores.left)
    // Subscription receive: the right row where it lives, the subscription's own entry, and the right
    // key itself (a list-layout value to migrate, see subscription-store.ts).
    env.addPrefetch(topics.subscription, stores.rightRoot)
    env.addPrefetch(topics.subscription, stores.rehomed)
    env.addPrefetch(topics.subscription, stores.subscriptions)
    env.addPrefetch(topics.subscription, stores.subscriptions, (decoded) =>
      SubscriptionStore.entryKey(decoded.key, (decoded.value as Subscription).k),
    )
    // Right change and right receive: every entry of the right key (one prefix scan), and the key itself.
    for (const topic of [...rightGetter.topics, topics.right]) {
      env.addPrefetch(topic, stores.subscriptions)
      env.addPrefetchScan(topic, stores.subscriptions, (decoded) => SubscriptionStore.prefix(decoded.key))
    }

    env.addTopic(topics.subscription, subscriptionReceive(ctx))
    env.addTopic(topics.response, responseJoin(ctx))
    const right = rightChange(ctx)
    env.addTopic(topics.right, right.receive)
    env.addBatchState({
      flush() {
        packTopic(scope.out, topics.subscription, PER_PACK)
        packTopic(scope.out, topics.response, PER_PACK)
      },
      reset() {},
    })
    return [subscriptionSend(ctx), right.change]
  },
}
