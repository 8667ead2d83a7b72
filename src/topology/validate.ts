/**
 * Build-time validation: one pass over the whole graph collecting every problem, thrown once as a
 * ConfigError (RS_TOPOLOGY_INVALID) whose lines read `/topology/nodes/<name>/<field>: <message>`.
 * The per-record path never re-validates.
 */
import { ConfigError, type Problem } from '../errors.ts'
import type { TopologyGraph } from './graph.ts'
import { isNodeKind, externalReads, externalWrites, factsOf, foreignStoresOf, kindOf } from './node-kinds.ts'

const NAME = /^[a-zA-Z0-9._-]+$/
/** Kafka's limit on topic names. */
const MAX_TOPIC_LENGTH = 249

export function topologyProblems(graph: TopologyGraph): Problem[] {
  const problems: Problem[] = []
  const add = (path: string, message: string): void => {
    problems.push({ path, message })
  }
  if (typeof graph.applicationId !== 'string' || !NAME.test(graph.applicationId)) {
    add('/topology/applicationId', 'required: letters, digits, ".", "_" and "-" only')
  }
  if (
    typeof graph.deadLetterTopic !== 'string' ||
    !NAME.test(graph.deadLetterTopic) ||
    graph.deadLetterTopic.length > MAX_TOPIC_LENGTH
  ) {
    add(
      '/topology/deadLetterTopic',
      `required: a topic name (letters, digits, ".", "_", "-"; at most ${MAX_TOPIC_LENGTH} characters)`,
    )
  }

  const seen = new Set<string>()
  const storeOwners = new Map<string, string>()
  const sourceTopics = new Map<string, string>()
  const internalTopics = new Set<string>()
  for (const node of graph.nodes) {
    const at = `/topology/nodes/${node.name}`
    if (!isNodeKind(node.kind)) {
      add(`${at}/kind`, `unknown node kind '${String(node.kind)}'`)
      continue
    }
    const spec = kindOf(node)
    if (typeof node.name !== 'string' || !NAME.test(node.name))
      add(`${at}/name`, 'letters, digits, ".", "_" and "-" only')
    else if (seen.has(node.name)) add(`${at}/name`, `duplicate: another node is already named '${node.name}'`)
    const stores = spec.stores(node, graph)
    if (spec.facts.stateful && !node.named)
      add(`${at}/name`, `required: a ${node.kind} is stateful; its name is its store and changelog identity`)
    node.inputs.forEach((input, slot) => {
      if (!seen.has(input))
        add(`${at}/inputs/${slot}`, `unknown node '${input}' (inputs must be built before the node that reads them)`)
    })
    stores.forEach((store, i) => {
      if (typeof store !== 'string' || !NAME.test(store))
        add(`${at}/stores/${i}`, 'letters, digits, ".", "_" and "-" only')
      const owner = storeOwners.get(store)
      if (owner !== undefined) add(`${at}/stores/${i}`, `store '${store}' is already owned by '${owner}'`)
      storeOwners.set(store, node.name)
    })
    if (spec.facts.role === 'source') {
      for (const topic of externalReads(node, graph)) {
        if (typeof topic !== 'string') continue
        const reader = sourceTopics.get(topic)
        if (reader !== undefined) add(`${at}/topic`, `'${topic}' is already read by table '${reader}'`)
        sourceTopics.set(topic, node.name)
      }
    }
    if (graph.applicationId && typeof node.name === 'string') {
      for (const topic of spec.internalTopics(node, graph)) {
        if (topic.name.length > MAX_TOPIC_LENGTH)
          add(`${at}/name`, `internal topic '${topic.name}' is longer than ${MAX_TOPIC_LENGTH} characters`)
        internalTopics.add(topic.name)
      }
    }
    spec.validate(node, graph, (field, message) => add(`${at}/${field}`, message))
    seen.add(node.name)
  }
  for (const node of graph.nodes) {
    if (!isNodeKind(node.kind)) continue
    // Foreign stores are named by forgetting options today (govern's `forget`), hence the path.
    for (const store of foreignStoresOf(node, graph))
      if (!storeOwners.has(store))
        add(`/topology/nodes/${node.name}/forget`, `store '${store}' is not a store of this topology`)
    if (factsOf(node).role !== 'sink') continue
    for (const topic of externalWrites(node, graph))
      if (internalTopics.has(topic))
        add(`/topology/nodes/${node.name}/topic`, `'${topic}' is an internal topic of this topology`)
  }
  const known = graph.nodes.filter((n) => isNodeKind(n.kind))
  if (!known.some((n) => factsOf(n).role === 'source')) add('/topology/nodes', 'no source: read at least one table')
  if (!known.some((n) => factsOf(n).role === 'sink'))
    add('/topology/nodes', 'no sink: write at least one output with .to(topic)')
  return problems
}

/** Throws one ConfigError (RS_TOPOLOGY_INVALID) listing every problem, or returns. */
export function validateTopology(graph: TopologyGraph): void {
  const problems = topologyProblems(graph)
  if (problems.length > 0)
    throw new ConfigError(problems, `topology '${String(graph.applicationId)}'`, 'RS_TOPOLOGY_INVALID')
}
