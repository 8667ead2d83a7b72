/**
 * `to(topic)`: writes every row change to a topic — upserts as JSON values, deletes as tombstones —
 * keyed by the row key and partitioned with Kafka's default partitioner over the partition key
 * (the row key, or the key a stage chose, e.g. the entity of a chunk).
 */
import { chunkEventEncoder } from '../chunking/chunk-embed-stage.ts'
import { ConfigError, RagstreamError } from '../errors.ts'
import type { CompileEnv, NodeKindSpec } from '../topology/compiled.ts'
import { topicNameProblem, type Encoder, type SinkNode } from '../topology/graph.ts'
import { encodeJson } from '../topology/json.ts'
import { partitionForString } from '../topology/partitioner.ts'
import { externalReads, factsOf, nodeIs } from '../topology/node-kinds.ts'
import { recordFailure, userFunction } from '../topology/user-code.ts'

export interface ToOptions {
  /** Optional; generated (`KTABLE-SINK-<n>`) when absent. */
  readonly name?: string
  /** Replaces the default UTF-8 key / JSON value encoding. */
  readonly encode?: Encoder
}

export function sinkNode(
  name: string,
  named: boolean,
  input: string,
  topic: string,
  encode: Encoder | undefined,
  chunkEvents = false,
): SinkNode {
  return Object.freeze({
    kind: 'sink',
    name,
    named,
    inputs: Object.freeze([input]),
    topic,
    encode,
    ...(chunkEvents ? { chunkEvents: true } : {}),
  })
}

export const sinkOperator: NodeKindSpec<SinkNode> = {
  facts: { stateful: false, role: 'sink' },
  externalTopics: (node) => ({ reads: [], writes: [node.topic] }),
  validate(node, graph, problem) {
    const topicProblem = topicNameProblem(node.topic)
    if (topicProblem !== '') problem('topic', topicProblem)
    else if (graph.nodes.some((n) => factsOf(n).role === 'source' && externalReads(n, graph).includes(node.topic)))
      problem('topic', `'${node.topic}' is also a source topic of this topology (a cycle)`)
    if (node.encode !== undefined && typeof node.encode !== 'function')
      problem('encode', 'must be a function (key, value) => { key, value }')
    if (node.chunkEvents === true && !graph.nodes.some((n) => n.name === node.inputs[0] && nodeIs(n, 'chunk-embed')))
      problem('inputs', 'toChunks writes chunk events: its input must be chunk(…).embed(…)')
  },
  stores: () => [],
  internalTopics: () => [],
  physical: (node) => ({
    nodes: [{ type: 'sink', name: node.name, topic: node.topic, next: [] }],
    entries: [node.name],
    exit: null,
  }),
  compile(node, env) {
    const { scope } = env
    const { name, topic } = node
    const userEncode = node.chunkEvents === true ? chunkEventsEncoder(node, env.services) : node.encode
    const encode = userEncode === undefined ? undefined : userFunction(name, userEncode)
    // A value user code built may not be JSON (a bigint, a cycle): that record's failure, not the batch's.
    const userJson = userFunction(name, encodeJson)
    const partitions = env.sinkPartitions(topic)
    // Straight after a table source the value is the one it just stored: reuse its bytes. Further
    // down, user code may have mutated it in place, so encode.
    const reuse = env.graph.nodes.some((n) => n.name === node.inputs[0] && factsOf(n).emitsStoredValue === true)
    return [
      (key, _oldValue, newValue) => {
        const partition = partitionForString(scope.partitionKey ?? key, partitions)
        if (encode === undefined) {
          if (newValue === null || (reuse && newValue === scope.encodedValue)) {
            scope.out.push({
              topic,
              partition,
              key: Buffer.from(key, 'utf8'),
              value: newValue === null ? null : scope.encodedBytes,
            })
            return
          }
          const value = userJson(newValue)
          scope.out.push({ topic, partition, key: Buffer.from(key, 'utf8'), value })
          return
        }
        const encoded = encode(key, newValue)
        if (
          encoded === null ||
          typeof encoded !== 'object' ||
          (encoded.key !== null && !Buffer.isBuffer(encoded.key)) ||
          (encoded.value !== null && !Buffer.isBuffer(encoded.value))
        ) {
          throw recordFailure(
            name,
            new RagstreamError(
              'RS_RECORD_INVALID',
              'the encoder must return { key: Buffer | null, value: Buffer | null }',
            ),
          )
        }
        scope.out.push({ topic, partition, key: encoded.key, value: encoded.value })
      },
    ]
  },
}

/** `toChunks`: the services' chunk-event codec (Avro through the registry, or JSON in the test driver). */
function chunkEventsEncoder(node: SinkNode, services: CompileEnv['services']): Encoder {
  if (services === undefined)
    throw new ConfigError(
      [{ path: `/topology/nodes/${node.name}/encode`, message: 'no chunk-event codec: compiled without services' }],
      'topology',
      'RS_TOPOLOGY_INVALID',
      'build it from an app deployment (new TopologyBuilder({ applicationId, services })) or run it in the TopologyTestDriver',
    )
  return chunkEventEncoder(services.chunkEvents)
}
