/**
 * Where a topology's audit events go, read off the graph (design point 7: the audit trail is written
 * in the transaction of what it explains).
 *
 *   - `govern` writes its own (DENIED, REDACTED, RECLASSIFIED, DELETION_APPLIED) to `audit.topic`, else
 *     to the chunk topic written downstream of it (`toChunks`), where the pgvector sink reads them.
 *   - A CDC table writes the audit events of its resets (TRUNCATED, SNAPSHOT_RESET) to its own `audit`
 *     option when it has one; else to the audit topic of every govern it feeds, and to the chunk topic
 *     of every `toChunks` it reaches without passing a govern (a topology with no govern still has an
 *     index whose rows a truncate removed). With none of these it has no audit topic: the reset is
 *     still counted (`ragstream_table_resets_total`), but no event is written.
 *
 * Encoding: the output's own `encode`, else the services' (Avro through the registry, signed, for the
 * pgvector sink), else JSON.
 */
import type { TailServices } from '../config/rag-services.ts'
import type { GovernNode, TableSourceNode, TopologyGraph, TopologyNode } from '../topology/graph.ts'
import { nodeIs } from '../topology/node-kinds.ts'
import type { AuditOutput } from './govern/options.ts'

/** Nodes downstream of `name`, in graph order. */
export function downstreamOf(graph: TopologyGraph, name: string): TopologyNode[] {
  const reached = new Set([name])
  const out: TopologyNode[] = []
  for (const n of graph.nodes)
    if (n.inputs.some((i) => reached.has(i))) {
      reached.add(n.name)
      out.push(n)
    }
  return out
}

/** The topic a govern's audit events go to: `audit.topic`, else the chunk topic written downstream (`toChunks`). */
export function governAuditTopic(node: GovernNode, graph: TopologyGraph): string | undefined {
  if (node.options?.audit !== undefined) return node.options.audit?.topic
  const sink = downstreamOf(graph, node.name).find((n) => nodeIs(n, 'sink') && n.chunkEvents === true)
  return sink !== undefined && nodeIs(sink, 'sink') ? sink.topic : undefined
}

function servicesOutput(topic: string, services: TailServices | undefined): AuditOutput {
  return services?.auditEvents(topic) ?? { topic }
}

/** A govern's audit output: its `audit` option, else the services' encoding on {@link governAuditTopic}. */
export function governAuditOutput(node: GovernNode, graph: TopologyGraph, services: TailServices | undefined) {
  return node.options.audit ?? servicesOutput(governAuditTopic(node, graph)!, services)
}

/** The governs a table feeds, and the chunk sinks it reaches without passing a govern, in graph order. */
function auditedConsumers(node: TableSourceNode, graph: TopologyGraph): (GovernNode | string)[] {
  const reached = new Set([node.name])
  const ungoverned = new Set([node.name])
  const found: (GovernNode | string)[] = []
  for (const n of graph.nodes) {
    if (!n.inputs.some((i) => reached.has(i))) continue
    reached.add(n.name)
    const open = n.inputs.some((i) => ungoverned.has(i))
    if (!open) continue
    if (nodeIs(n, 'govern')) found.push(n)
    else if (nodeIs(n, 'sink') && n.chunkEvents === true) found.push(n.topic)
    else ungoverned.add(n.name)
  }
  return found
}

/** The topics a CDC table's reset audit events go to (see the module comment); empty when it has none. */
export function tableAuditTopics(node: TableSourceNode, graph: TopologyGraph): string[] {
  if (node.format !== 'cdc') return []
  if (node.audit !== undefined) return [node.audit.topic]
  const topics = auditedConsumers(node, graph).map((c) => (typeof c === 'string' ? c : governAuditTopic(c, graph)))
  return [...new Set(topics.filter((t): t is string => t !== undefined))]
}

/** The outputs of {@link tableAuditTopics}, one per topic, each with its encoding. */
export function tableAuditOutputs(
  node: TableSourceNode,
  graph: TopologyGraph,
  services: TailServices | undefined,
): AuditOutput[] {
  if (node.format !== 'cdc') return []
  if (node.audit !== undefined) return [node.audit]
  const outputs = new Map<string, AuditOutput>()
  for (const consumer of auditedConsumers(node, graph)) {
    const output =
      typeof consumer === 'string'
        ? servicesOutput(consumer, services)
        : governAuditTopic(consumer, graph) === undefined
          ? undefined
          : governAuditOutput(consumer, graph, services)
    if (output !== undefined && !outputs.has(output.topic)) outputs.set(output.topic, output)
  }
  return [...outputs.values()]
}
