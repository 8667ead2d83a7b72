/**
 * `aggregate`: `table.groupBy(groupKey, valueMapper).aggregate(initializer, adder, subtractor)` (and
 * `count`, `reduce`) with Kafka Streams' KTable semantics (design point 11: aggregates are tables).
 *
 *   <name>-groupby-map   child owner: a child change sends subtract(old mapped value) to its old group
 *                        and add(new mapped value) to its new group, on the group-by repartition topic
 *                        keyed by group key; a child tombstone only subtracts; a child that stays in
 *                        its group sends both in one record (subtract, then add)
 *   <name>               group owner (the task of the group key's partition): applies the change to the
 *                        group's aggregate in the store `<name>` (changelogged, exactly once like every
 *                        store) and emits the group's old and new aggregate
 *
 * A group whose last contributing child left is deleted (a tombstone downstream), as SQL's GROUP BY
 * has no empty groups; its next child starts again from `initializer()`. A subtraction reaching a group
 * that holds nothing (its addition was dead-lettered) is dropped. The result is a table keyed by the
 * group key: a join can read it (as either side), govern and chunk can consume it.
 *
 * Bounded: one repartition record per child change (two when it moves groups), one store write per
 * group change — however many children a group has.
 */
import { RagstreamError } from '../../errors.ts'
import { CHANGELOG_CONFIG, REPARTITION_CONFIG, type ChangeHandler, type NodeKindSpec } from '../../topology/compiled.ts'
import { changelogTopic, groupByTopic, type AggregateNode } from '../../topology/graph.ts'
import { encodeJson } from '../../topology/json.ts'
import { nodeIs, tableRoot } from '../../topology/node-kinds.ts'
import { subjectOfRow } from '../table-source.ts'
import { partitionForString } from '../../topology/partitioner.ts'
import { recordFailure, userFunction } from '../../topology/user-code.ts'
import { collectHandler, collectProblems } from './collect.ts'
import { groupPrefix } from '../../state/store.ts'
import { decodeJson } from '../../topology/json.ts'
import { decodeGroupChange, decodeGroupState, groupChangeBytes, type GroupChange } from './wire.ts'

export interface AggregateOptions {
  /** Required: names the aggregate's store, its changelog and its group-by repartition topic. */
  readonly name: string
}

export interface CollectOptions<V> extends AggregateOptions {
  /** The list's order (ties: child key); default the child key. */
  readonly orderBy?: (value: V, childKey: string) => string | number
  /** Largest first. Default false. */
  readonly descending?: boolean
  /** Required: at most this many children in a document (1 to 10,000); `total` counts them all. */
  readonly limit: number
}

export function aggregateNode(
  name: string,
  named: boolean,
  input: string,
  fns: Pick<
    AggregateNode,
    'groupKey' | 'valueMapper' | 'initializer' | 'adder' | 'subtractor' | 'operation' | 'collect'
  >,
): AggregateNode {
  return Object.freeze({
    kind: 'aggregate',
    name,
    named,
    inputs: Object.freeze([input]),
    groupKey: fns.groupKey,
    valueMapper: fns.valueMapper,
    initializer: fns.initializer,
    adder: fns.adder,
    subtractor: fns.subtractor,
    operation: fns.operation,
    ...(fns.collect === undefined ? {} : { collect: Object.freeze({ ...fns.collect }) }),
  })
}

/** A three-argument user function behind the user-code boundary (userFunction passes two). */
function userCombiner(
  node: string,
  fn: (aggregate: unknown, value: unknown, groupKey: string) => unknown,
): (aggregate: unknown, value: unknown, groupKey: string) => unknown {
  return (aggregate, value, groupKey) => {
    try {
      return fn(aggregate, value, groupKey) ?? null
    } catch (error) {
      throw recordFailure(node, error)
    }
  }
}

export const aggregateOperator: NodeKindSpec<AggregateNode> = {
  // readsTables: its input must pass real old values (a join upstream is then materialized), since a
  // child change subtracts the old value.
  facts: { stateful: true, table: 'root', readsTables: true },
  validate(node, graph, problem) {
    if (typeof node.groupKey !== 'function') problem('groupKey', 'required: a function (value, key) => groupKey')
    if (typeof node.valueMapper !== 'function') problem('valueMapper', 'must be a function (value, key) => value')
    if (typeof node.initializer !== 'function') problem('initializer', 'required: a function () => aggregate')
    if (typeof node.adder !== 'function')
      problem('adder', 'required: a function (aggregate, value, groupKey) => aggregate')
    if (typeof node.subtractor !== 'function')
      problem('subtractor', 'required: a function (aggregate, value, groupKey) => aggregate')
    if (node.collect !== undefined) collectProblems(node.collect, problem)
    const input = node.inputs[0]
    if (graph.nodes.some((n) => n.name === input) && tableRoot(graph, input) === undefined)
      problem(
        'inputs/0',
        `'${input}' must be a table (a source, a join result or an aggregate, then filter/mapValues only); a stage's output cannot be grouped`,
      )
  },
  stores: (node) => [node.name],
  internalTopics: (node, graph) => [
    {
      name: changelogTopic(graph.applicationId, node.name),
      role: 'changelog',
      store: node.name,
      purpose: `changelog of store ${node.name} (the aggregate per group key)`,
      config: CHANGELOG_CONFIG,
    },
    {
      name: groupByTopic(graph.applicationId, node.name),
      role: 'repartition',
      purpose: `${node.name} child changes (subtract old, add new), keyed by group key`,
      config: REPARTITION_CONFIG,
    },
  ],
  getter: (node, graph) => ({
    store: node.name,
    topics: [groupByTopic(graph.applicationId, node.name)],
    // collect stores the document itself at the parent key (its children are grouped entries beside it).
    ...(node.collect !== undefined ? { raw: true } : {}),
    get: (bytes) =>
      bytes === undefined ? null : node.collect !== undefined ? decodeJson(bytes) : (decodeGroupState(bytes).v ?? null),
  }),
  physical(node, graph) {
    const { name } = node
    const topic = groupByTopic(graph.applicationId, name)
    return {
      nodes: [
        { type: 'processor', name: `${name}-groupby-map`, stores: [], next: [`${name}-groupby-sink`] },
        { type: 'sink', name: `${name}-groupby-sink`, topic, next: [] },
        { type: 'source', name: `${name}-groupby-source`, topics: [topic], next: [name] },
        { type: 'processor', name, stores: [name], detail: `aggregate: ${node.operation}`, next: [] },
      ],
      entries: [`${name}-groupby-map`],
      exit: name,
    }
  },
  compile(node, env) {
    const { scope, partitions } = env
    const { name } = node
    const topic = groupByTopic(env.graph.applicationId, name)
    const downstream = env.downstream(name)
    const groupKeyOf = userFunction(name, (value: unknown, key: string): string | null => {
      const group = node.groupKey(value, key)
      if (group !== null && group !== undefined && typeof group !== 'string')
        throw new RagstreamError('RS_RECORD_INVALID', `the group key must be a string, got ${typeof group}`, {
          hint: 'return a string (or null for no group) from groupBy',
        })
      return group ?? null
    })
    const mapValue = userFunction(name, (value: unknown, key: string): unknown => node.valueMapper(value, key) ?? null)
    const initial = userFunction(name, (): unknown => node.initializer() ?? null)
    const add = userCombiner(name, node.adder)
    const subtract = userCombiner(name, node.subtractor)
    const json = userFunction(name, encodeJson)

    // collect keeps each child's data subjects when the grouped table names them (its source's `subject`):
    // read off the row itself, or off the source's store when filter/mapValues lie in between.
    const rootName = tableRoot(env.graph, node.inputs[0])
    const root = env.graph.nodes.find((n) => n.name === rootName)
    const rootSubject =
      node.collect !== undefined && root !== undefined && nodeIs(root, 'table-source') ? root.subject : undefined
    const subjectsOf = userFunction(name, (key: string, value: unknown): readonly string[] | undefined => {
      if (rootSubject === undefined) return undefined
      const row = rootName === node.inputs[0] ? value : scope.stores.get(rootName!)!.get(scope.record.partition, key)
      const subject = subjectOfRow(rootSubject, key, row instanceof Buffer ? decodeJson(row) : row)
      return subject === null ? [] : [subject]
    })

    const send = (group: string, change: GroupChange): void => {
      scope.out.push({
        topic,
        partition: partitionForString(group, partitions),
        key: Buffer.from(group, 'utf8'),
        value: groupChangeBytes(change),
      })
    }

    // Child owner: subtract from the old group, add to the new one.
    const childChange: ChangeHandler = (key, oldValue, newValue) => {
      if (oldValue === undefined)
        throw new Error(`aggregate ${name}: its input passed no old value (an operator bug: readsTables keeps them)`)
      const oldGroup = oldValue === null ? null : groupKeyOf(oldValue, key)
      const newGroup = newValue === null ? null : groupKeyOf(newValue, key)
      const s = oldGroup === null ? undefined : ([mapValue(oldValue, key)] as const)
      const a = newGroup === null ? undefined : ([mapValue(newValue, key)] as const)
      const j = newGroup === null ? undefined : subjectsOf(key, newValue)
      const subjects = j === undefined ? {} : { j }
      if (oldGroup !== null && oldGroup === newGroup) {
        send(oldGroup, { k: key, s, a, ...subjects })
        return
      }
      if (oldGroup !== null) send(oldGroup, { k: key, s })
      if (newGroup !== null) send(newGroup, { k: key, a, ...subjects })
    }

    // Group owner: apply the change to the group's aggregate.
    env.addPrefetch(topic, name)
    const collect =
      node.collect === undefined
        ? undefined
        : collectHandler(node, node.collect, scope, downstream, rootSubject !== undefined)
    if (collect !== undefined) {
      // The child's old and new entry, and the parent's entries in order (read only to refill the list).
      env.addPrefetch(topic, name, (decoded) => collect.entryKeys(decoded)[0])
      env.addPrefetch(topic, name, (decoded) => collect.entryKeys(decoded)[1])
      env.addPrefetchScan(topic, name, (decoded) => groupPrefix(decoded.key))
    }
    env.addTopic(topic, {
      node: name,
      decode: (record) => {
        if (record.key === null || record.value === null)
          throw new RagstreamError('RS_DECODE_FAILED', 'a group-by record needs a key and a value')
        return { key: record.key.toString('utf8'), value: decodeGroupChange(record.value) }
      },
      handle(record, decoded) {
        if (collect !== undefined) return collect.handle(record, decoded)
        const group = decoded.key
        const change = decoded.value as GroupChange
        const store = scope.stores.get(name)!
        const partition = record.partition
        const oldBytes = store.get(partition, group)
        const old = oldBytes === undefined ? undefined : decodeGroupState(oldBytes)
        let n = old?.n ?? 0
        let v = old === undefined ? undefined : old.v
        if (change.s !== undefined && n > 0) {
          n--
          v = n === 0 ? undefined : subtract(v, change.s[0], group)
        }
        if (change.a !== undefined) {
          v = add(n === 0 ? initial() : v, change.a[0], group)
          n++
        }
        const oldAggregate = old === undefined ? null : (old.v ?? null)
        if (n === 0) {
          if (oldBytes === undefined) return
          scope.undo.remember(store, partition, group, oldBytes)
          store.delete(partition, group)
          downstream(group, oldAggregate, null)
          return
        }
        const bytes = json({ n, v: v ?? null })
        if (oldBytes !== undefined && bytes.equals(oldBytes)) return
        scope.undo.remember(store, partition, group, oldBytes)
        store.put(partition, group, bytes)
        downstream(group, oldAggregate, v ?? null)
      },
    })
    return [childChange]
  },
}
