/**
 * `fk-join`: KTable–KTable foreign-key join, as Kafka Streams' KIP-213.
 *
 * Left owner (task of the left key's partition p): on a left change it sends a subscription, keyed by
 * the foreign key, to the subscription repartition topic; when the foreign key moves from a to b it
 * unsubscribes from a. Right owner (task of the foreign key's partition): keeps the reverse index
 * `<join>-subscriptions` (right key → [left key, left partition, left hash]) and answers every
 * subscription — and every right change or delete, fanned out through the index — on the response
 * repartition topic, at the left partition p. The left owner then joins with the left row's current
 * value and emits, unless the response's hash of the left row is stale (the row changed since).
 * Every output for a left key is thus emitted by the left key's owner, in order.
 *
 * Inner vs left, as in Kafka Streams: a left join emits `joiner(left, null)` when the right row is
 * missing or deleted, an inner join emits a tombstone (or nothing for a brand-new row); left deletes
 * (and rows filtered out upstream) emit a tombstone in both.
 *
 * Subscriptions for right key k go to partition `partitionForString(k)`. A right row that arrived on
 * that partition is read from its table's store there. One that did not — its topic is partitioned by
 * other key bytes, e.g. a Debezium key `{"id":42}` decoded to `42` — is re-homed: the right owner
 * forwards its changes on the right repartition topic to partition `partitionForString(k)`, which
 * keeps it in `<join>-right`. So the join never depends on how producers partitioned the right topic.
 */
import { hash } from 'node:crypto'
import { RagstreamError } from '../errors.ts'
import {
  CHANGELOG_CONFIG,
  REPARTITION_CONFIG,
  type ChangeHandler,
  type InternalTopic,
  type NodeKindSpec,
} from '../topology/compiled.ts'
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
} from '../topology/graph.ts'
import { decodeJson, encodeJson } from '../topology/json.ts'
import { partitionForString } from '../topology/partitioner.ts'
import { packTopic, unpackRecords } from '../topology/record-pack.ts'

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

/* Subscription record: one item of a record pack (src/topology/record-pack.ts) — the subscriptions a
 * left owner sends one partition in one batch, in order, at most PER_PACK to a record. Item key =
 * foreign key (UTF-8), partition = partitionForString(foreign key), item value =
 *   0x01 (version) | u8 instruction | u32 left partition | u32 left key length | left key UTF-8 | left hash (base64; none = null)
 * A value starting with `{` is the earlier format, still read: JSON {"i", "k", "p", "h"}. */
const UNSUBSCRIBE = 0
const PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE = 1
const PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE = 2
const WIRE_V1 = 0x01
const JSON_START = 0x7b // '{'
/**
 * Items per pack on the subscription and response topics. The runtime bounds a batch (one
 * transaction) by records, and every left row costs a subscription and a response: packed, those cost
 * 1/PER_PACK of a record each, so a batch's fixed cost is shared by ~PER_PACK times more rows. Small on
 * purpose: a batch of packs does up to PER_PACK times the work (and output) of a batch of records.
 */
const PER_PACK = 16

interface Subscription {
  readonly i: number
  readonly k: string
  readonly p: number
  readonly h: string | null
}

function subscriptionBytes(
  instruction: number,
  leftKey: string,
  leftPartition: number,
  leftHashValue: string | null,
): Buffer {
  const keyLength = Buffer.byteLength(leftKey, 'utf8')
  const bytes = Buffer.allocUnsafe(10 + keyLength + (leftHashValue?.length ?? 0))
  bytes[0] = WIRE_V1
  bytes[1] = instruction
  bytes.writeUInt32BE(leftPartition, 2)
  bytes.writeUInt32BE(keyLength, 6)
  bytes.write(leftKey, 10, 'utf8')
  if (leftHashValue !== null) bytes.write(leftHashValue, 10 + keyLength, 'latin1')
  return bytes
}

function decodeSubscription(bytes: Buffer): Subscription {
  if (bytes[0] === JSON_START) return decodeJson(bytes) as Subscription
  if (bytes[0] !== WIRE_V1 || bytes.length < 10)
    throw new RagstreamError('RS_DECODE_FAILED', `not a subscription (version byte ${bytes[0]})`)
  const keyEnd = 10 + bytes.readUInt32BE(6)
  if (keyEnd > bytes.length) throw new RagstreamError('RS_DECODE_FAILED', 'the subscription is truncated')
  return {
    i: bytes[1],
    p: bytes.readUInt32BE(2),
    k: bytes.toString('utf8', 10, keyEnd),
    h: bytes.length > keyEnd ? bytes.toString('latin1', keyEnd, bytes.length) : null,
  }
}

/* Response record: one item of a record pack, at most PER_PACK to a record. Item key = left key
 * (UTF-8), partition = the left partition from the subscription, item value =
 *   0x01 (version) | u32 left hash length (0xffffffff = null) | left hash (base64) | the right row's JSON bytes (none = no row)
 * The right row's bytes are spliced in unparsed: one row fans out to many left keys.
 * A value starting with `{` is the earlier format, still read: JSON {"h": left hash | null, "v": right value | null}. */
interface Response {
  readonly h: string | null
  readonly v: unknown
  /** The right row's JSON bytes, parsed only once the answer turns out current (most stale ones never are). */
  readonly json?: Buffer | null
}

const NO_HASH = 0xffffffff

function responseBytes(leftHashValue: string | null, right: Buffer | null): Buffer {
  const hashLength = leftHashValue?.length ?? 0
  const bytes = Buffer.allocUnsafe(5 + hashLength + (right?.length ?? 0))
  bytes[0] = WIRE_V1
  bytes.writeUInt32BE(leftHashValue === null ? NO_HASH : hashLength, 1)
  if (leftHashValue !== null) bytes.write(leftHashValue, 5, 'latin1')
  right?.copy(bytes, 5 + hashLength)
  return bytes
}

function decodeResponse(bytes: Buffer): Response {
  if (bytes[0] === JSON_START) return decodeJson(bytes) as Response
  if (bytes[0] !== WIRE_V1 || bytes.length < 5)
    throw new RagstreamError('RS_DECODE_FAILED', `not a join response (version byte ${bytes[0]})`)
  const hashLength = bytes.readUInt32BE(1)
  const valueStart = hashLength === NO_HASH ? 5 : 5 + hashLength
  if (valueStart > bytes.length) throw new RagstreamError('RS_DECODE_FAILED', 'the join response is truncated')
  return {
    h: hashLength === NO_HASH ? null : bytes.toString('latin1', 5, valueStart),
    v: undefined,
    json: bytes.length > valueStart ? bytes.subarray(valueStart) : null,
  }
}

/* Right repartition record: key = right key (UTF-8), partition = partitionForString(right key),
 * value = JSON of the right value after the right input's filter/mapValues chain; null = deleted. */

/* Reverse index value in `<join>-subscriptions`, per right key: JSON [[left key, left partition, left hash], ...]. */
type StoredReverseIndex = [string, number, string | null][]

/** A right key's subscribers as the batch sees them: left key → [left partition, left hash]. */
interface ReverseIndex {
  readonly partition: number
  readonly rightKey: string
  readonly subscribers: Map<string, [number, string | null]>
  dirty: boolean
}

/** KIP-213's stale-response check: a 128-bit hash of the left row's stored bytes. */
function leftHash(bytes: Buffer): string {
  return hash('md5', bytes, 'base64')
}

/**
 * The materialized table a join input reads through filter/mapValues only — a table source, or a
 * join (whose result is then materialized); undefined if there is none (e.g. a stage's output).
 */
function tableRoot(graph: TopologyGraph, name: string): string | undefined {
  const byName = new Map(graph.nodes.map((n) => [n.name, n]))
  for (let node = byName.get(name); node !== undefined; node = byName.get(node.inputs[0] ?? '')) {
    if (node.kind === 'table-source' || node.kind === 'fk-join') return node.name
    if (node.kind !== 'filter' && node.kind !== 'map-values') return undefined
  }
  return undefined
}

/** A join's result is materialized (in a store named after the join) only when another join reads it. */
function isMaterialized(graph: TopologyGraph, join: string): boolean {
  return graph.nodes.some((n) => n.kind === 'fk-join' && n.inputs.some((input) => tableRoot(graph, input) === join))
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
    const { name, foreignKey, joiner } = node
    const isLeftJoin = node.joinType === 'left'
    const app = env.graph.applicationId
    const leftGetter = env.getter(node.inputs[0])
    const rightGetter = env.getter(node.inputs[1])
    const leftStore = leftGetter.store
    const rightRootStore = rightGetter.store
    const indexStore = subscriptionStore(name)
    const rehomedStore = rightStore(name)
    const subTopic = subscriptionTopic(app, name)
    const respTopic = responseTopic(app, name)
    const rightTopic = rightRepartitionTopic(app, name)
    const downstream = env.downstream(name)
    const materialized = isMaterialized(env.graph, name)
    // Materialized (another join reads this result): keep it in the store named after the join, and
    // pass downstream the real old value. The store key's partition is the left key's (this task's).
    const emit: ChangeHandler = !materialized
      ? downstream
      : (key, _oldValue, newValue) => {
          const store = scope.stores.get(name)!
          const partition = scope.record.partition
          const oldBytes = store.get(partition, key)
          scope.undoMore.push({ store, partition, key, value: oldBytes })
          if (newValue === null) store.delete(partition, key)
          else store.put(partition, key, userJson(newValue))
          downstream(key, oldBytes === undefined ? null : decodeJson(oldBytes), newValue)
        }
    if (materialized) {
      env.addPrefetch(responseTopic(app, name), name)
      for (const topic of leftGetter.topics) env.addPrefetch(topic, name)
    }

    for (const topic of rightGetter.topics) env.addPrefetch(topic, indexStore)
    env.addPrefetch(subTopic, indexStore)
    env.addPrefetch(subTopic, rightRootStore)
    env.addPrefetch(subTopic, rehomedStore)
    env.addPrefetch(rightTopic, indexStore)
    env.addPrefetch(respTopic, leftStore)

    const foreignKeyOf = (left: unknown): string | null => {
      scope.node = name
      scope.user = true
      const fk = foreignKey(left)
      if (fk !== null && fk !== undefined && typeof fk !== 'string') {
        throw new RagstreamError('RS_RECORD_INVALID', `the foreign key must be a string, got ${typeof fk}`)
      }
      scope.user = false
      return fk ?? null
    }
    const join = (left: unknown, right: unknown): unknown => {
      scope.node = name
      scope.user = true
      const joined = joiner(left, right) ?? null
      scope.user = false
      return joined
    }
    /** JSON of a value user code built (a joiner's, a mapper's): not being JSON is that record's failure. */
    const userJson = (value: unknown): Buffer => {
      scope.node = name
      scope.user = true
      const bytes = encodeJson(value)
      scope.user = false
      return bytes
    }
    /** A response's right row: JSON we wrote, so a parse failure is that record's (dead-lettered), never a retry. */
    const rightValue = (json: Buffer): unknown => {
      scope.node = name
      scope.user = true
      const value = decodeJson(json)
      scope.user = false
      return value
    }
    const read = (getter: typeof leftGetter, bytes: Buffer | undefined, key: string): unknown => {
      scope.node = name
      scope.user = true
      const value = getter.get(bytes, key)
      scope.user = false
      return value
    }
    // Subscriptions and responses go to scope.out as records of their own (so a failing record takes
    // its own back with it); the end of the batch packs them (src/topology/record-pack.ts).
    const subscribe = (
      fk: string,
      instruction: number,
      leftKey: string,
      leftPartition: number,
      leftHashValue: string | null,
    ): void => {
      scope.out.push({
        topic: subTopic,
        partition: partitionForString(fk, partitions),
        key: Buffer.from(fk, 'utf8'),
        value: subscriptionBytes(instruction, leftKey, leftPartition, leftHashValue),
      })
    }
    // The reverse index of a hot right key (one customer, 50k tickets) would cost O(subscribers) per
    // subscription if re-read and re-written per record; instead each batch parses it once, updates it
    // in memory, and writes it once at the end of the batch.
    const indexes = new Map<string, ReverseIndex>()
    const indexOf = (partition: number, rightKey: string): ReverseIndex => {
      const id = `${partition}\u0000${rightKey}`
      let index = indexes.get(id)
      if (index === undefined) {
        const bytes = scope.stores.get(indexStore)!.get(partition, rightKey)
        const subscribers = new Map<string, [number, string | null]>()
        if (bytes !== undefined)
          for (const [leftKey, p, h] of decodeJson(bytes) as StoredReverseIndex) subscribers.set(leftKey, [p, h])
        indexes.set(id, (index = { partition, rightKey, subscribers, dirty: false }))
      }
      return index
    }
    env.addBatchState({
      flush() {
        packTopic(scope.out, subTopic, PER_PACK)
        packTopic(scope.out, respTopic, PER_PACK)
        const store = scope.stores.get(indexStore)!
        for (const index of indexes.values()) {
          if (!index.dirty) continue
          if (index.subscribers.size === 0) store.delete(index.partition, index.rightKey)
          else
            store.put(
              index.partition,
              index.rightKey,
              encodeJson([...index.subscribers].map(([leftKey, [p, h]]) => [leftKey, p, h])),
            )
        }
        indexes.clear()
      },
      reset() {
        indexes.clear()
      },
    })

    /** `right`: the right row's value as JSON bytes (null = no row), encoded once however many left keys it answers. */
    const respond = (
      leftKey: string,
      leftPartition: number,
      leftHashValue: string | null,
      right: Buffer | null,
    ): void => {
      scope.out.push({
        topic: respTopic,
        partition: leftPartition,
        key: Buffer.from(leftKey, 'utf8'),
        value: responseBytes(leftHashValue, right),
      })
    }
    /** The right input's value for stored right-root bytes, as JSON bytes: the stored bytes themselves when no filter/mapValues sits between. */
    const rightBytes = (stored: Buffer | undefined, key: string): Buffer | null => {
      if (rightGetter.raw === true) return stored ?? null
      const right = read(rightGetter, stored, key)
      return right === null ? null : userJson(right)
    }

    // Subscription repartition topic → right owner: maintain the reverse index, answer with the right row.
    env.addTopic(subTopic, {
      node: `${name}-subscription-receive`,
      unpack: unpackRecords,
      decode: (record) => ({ key: record.key!.toString('utf8'), value: decodeSubscription(record.value!) }),
      handle(record, decoded) {
        const sub = decoded.value as Subscription
        if (sub.i === UNSUBSCRIBE) {
          const index = indexOf(record.partition, decoded.key)
          if (index.subscribers.delete(sub.k)) index.dirty = true
          return
        }
        // Read the right row first: user code in the right input's chain may throw, and then nothing changed.
        // It lives either in its table's store here (it arrived on this partition) or, re-homed, in `<join>-right`.
        const rehomed = scope.stores.get(rehomedStore)!.get(record.partition, decoded.key)
        const right =
          rehomed !== undefined
            ? rehomed
            : rightBytes(scope.stores.get(rightRootStore)!.get(record.partition, decoded.key), decoded.key)
        const index = indexOf(record.partition, decoded.key)
        const known = index.subscribers.get(sub.k)
        // The same subscription again (an unchanged left row re-sent, e.g. a CDC snapshot re-read): the index stays as it is.
        if (known === undefined || known[0] !== sub.p || known[1] !== sub.h) {
          index.subscribers.set(sub.k, [sub.p, sub.h])
          index.dirty = true
        }
        if (right === null && sub.i === PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE) return
        respond(sub.k, sub.p, sub.h, right)
      },
    })

    // Response repartition topic → left owner: drop stale answers, join with the current left row.
    env.addTopic(respTopic, {
      node: name,
      unpack: unpackRecords,
      decode: (record) => ({ key: record.key!.toString('utf8'), value: decodeResponse(record.value!) }),
      handle(record, decoded) {
        const response = decoded.value as Response
        const bytes = scope.stores.get(leftStore)!.get(record.partition, decoded.key)
        if (bytes === undefined || response.h !== leftHash(bytes)) return
        const left = read(leftGetter, bytes, decoded.key)
        if (left === null) return
        const right =
          response.json === undefined ? response.v : response.json === null ? null : rightValue(response.json)
        if (right !== null) emit(decoded.key, undefined, join(left, right))
        else emit(decoded.key, undefined, isLeftJoin ? join(left, null) : null)
      },
    })

    const leftChange = (key: string, oldValue: unknown, newValue: unknown): void => {
      // A materialized join upstream may pass a tombstone for a row it never had.
      if (newValue === null && (oldValue === null || oldValue === undefined)) return
      const partition = scope.record.partition
      const oldFk = oldValue === null || oldValue === undefined ? null : foreignKeyOf(oldValue)
      if (newValue === null) {
        emit(key, undefined, null)
        if (oldFk !== null) subscribe(oldFk, UNSUBSCRIBE, key, partition, null)
        return
      }
      const newFk = foreignKeyOf(newValue)
      if (oldFk !== null && oldFk !== newFk) subscribe(oldFk, UNSUBSCRIBE, key, partition, null)
      if (newFk === null) {
        if (isLeftJoin) emit(key, undefined, join(newValue, null))
        else if (oldValue !== null) emit(key, undefined, null)
        return
      }
      const bytes = scope.stores.get(leftStore)!.get(partition, key)
      const instruction =
        isLeftJoin || oldValue !== null ? PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE : PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE
      subscribe(newFk, instruction, key, partition, bytes === undefined ? null : leftHash(bytes))
    }

    const fanOut = (partition: number, key: string, right: Buffer | null): void => {
      for (const [leftKey, [leftPartition, leftHashValue]] of indexOf(partition, key).subscribers)
        respond(leftKey, leftPartition, leftHashValue, right)
    }

    // Right repartition topic → the partition the right key hashes to: keep the re-homed row, fan out.
    env.addTopic(rightTopic, {
      node: `${name}-right-receive`,
      // The value is the right row's JSON as the right owner encoded it: kept and answered with unparsed.
      decode: (record) => ({ key: record.key!.toString('utf8'), value: record.value }),
      handle(record, decoded) {
        const store = scope.stores.get(rehomedStore)!
        // A copy: the record's bytes are a view into the whole fetch response, which a store must not pin.
        const bytes = decoded.value === null ? null : Buffer.from(decoded.value as Buffer)
        if (bytes === null) store.delete(record.partition, decoded.key)
        else store.put(record.partition, decoded.key, bytes)
        fanOut(record.partition, decoded.key, bytes)
      },
    })

    const rightChange = (key: string, _oldValue: unknown, newValue: unknown): void => {
      const partition = scope.record.partition
      const home = partitionForString(key, partitions)
      // Straight after its table source, the new value is the one it just stored: reuse those bytes.
      const bytes =
        newValue === null
          ? null
          : rightGetter.raw === true && newValue === scope.encodedValue && scope.encodedBytes !== null
            ? scope.encodedBytes
            : userJson(newValue)
      if (home === partition) fanOut(partition, key, bytes)
      else scope.out.push({ topic: rightTopic, partition: home, key: Buffer.from(key, 'utf8'), value: bytes })
    }

    return [leftChange, rightChange]
  },
}
