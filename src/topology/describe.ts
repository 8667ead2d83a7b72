/**
 * `describe`: the physical topology — sources, processors, stores, sinks, arrows, and every internal
 * topic with its config — as Kafka's TopologyDescription-style text, as JSON, and as Mermaid.
 * Sub-topologies are the connected parts of the processor graph; they talk only through topics.
 */
import type { PhysicalNode } from './compiled.ts'
import { topologyTopics } from './compile.ts'
import { changelogTopic, type TopologyGraph, type TopologyNode } from './graph.ts'
import { kindOf } from './node-kinds.ts'

export type DescribeFormat = 'text' | 'json' | 'mermaid'

export interface DescribedNode {
  readonly type: PhysicalNode['type']
  readonly name: string
  readonly topics?: readonly string[]
  readonly topic?: string
  readonly stores?: readonly string[]
  readonly detail?: string
  readonly successors: readonly string[]
  readonly predecessors: readonly string[]
}

export interface TopologyDescription {
  readonly applicationId: string
  readonly deadLetterTopic: string
  readonly subTopologies: readonly { readonly id: number; readonly nodes: readonly DescribedNode[] }[]
  readonly stores: readonly { readonly name: string; readonly owner: string; readonly changelog: string }[]
  readonly topics: readonly {
    readonly name: string
    readonly role: string
    readonly partitions: string
    readonly config: Readonly<Record<string, string>>
    readonly purpose: string
  }[]
  /** The logical graph the DSL built (user functions omitted). */
  readonly nodes: readonly Record<string, unknown>[]
}

/** A logical node without its functions (and a stage without its processor object). */
export function serialiseNode(node: TopologyNode): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) {
    if (typeof value === 'function' || key === 'processor' || value === undefined) continue
    out[key] = value
  }
  return out
}

export function describeTopology(graph: TopologyGraph): TopologyDescription {
  const physical: {
    type: PhysicalNode['type']
    name: string
    topics?: readonly string[]
    topic?: string
    stores?: readonly string[]
    detail?: string
    next: string[]
  }[] = []
  const parts = new Map<string, { entries: readonly string[]; exit: string | null }>()
  for (const node of graph.nodes) {
    const part = kindOf(node).physical(node, graph)
    parts.set(node.name, part)
    for (const p of part.nodes) physical.push({ ...p, next: [...p.next] })
  }
  const byName = new Map(physical.map((p) => [p.name, p]))
  for (const node of graph.nodes) {
    node.inputs.forEach((input, slot) => {
      const exit = parts.get(input)?.exit
      const entry = parts.get(node.name)!.entries[slot]
      if (exit) byName.get(exit)!.next.push(entry)
    })
  }
  const previous = new Map<string, string[]>(physical.map((p) => [p.name, []]))
  for (const p of physical) for (const n of p.next) previous.get(n)!.push(p.name)

  // Sub-topologies: connected components over arrows, numbered by first appearance.
  const component = new Map<string, number>()
  let count = 0
  for (const start of physical) {
    if (component.has(start.name)) continue
    const id = count++
    const stack = [start.name]
    while (stack.length > 0) {
      const name = stack.pop()!
      if (component.has(name)) continue
      component.set(name, id)
      stack.push(...byName.get(name)!.next, ...previous.get(name)!)
    }
  }
  const subTopologies = Array.from({ length: count }, (_, id) => ({
    id,
    nodes: physical
      .filter((p) => component.get(p.name) === id)
      .map(({ next, ...rest }): DescribedNode => ({
        ...rest,
        successors: next,
        predecessors: previous.get(rest.name)!,
      })),
  }))

  const internal = new Map(
    graph.nodes.flatMap((n) => kindOf(n).internalTopics(n, graph)).map((t) => [t.name, t.purpose]),
  )
  const topics = topologyTopics(graph).map((t) => ({
    name: t.name,
    role: t.role,
    partitions: t.role === 'source' || t.role === 'sink' ? 'external' : 'as source topics',
    config: t.config,
    purpose:
      internal.get(t.name) ??
      (t.role === 'dead-letter' ? 'records that failed, with error and source position headers' : t.role),
  }))
  const stores = graph.nodes.flatMap((n) =>
    kindOf(n)
      .stores(n, graph)
      .map((store) => ({ name: store, owner: n.name, changelog: changelogTopic(graph.applicationId, store) })),
  )
  return {
    applicationId: graph.applicationId,
    deadLetterTopic: graph.deadLetterTopic,
    subTopologies,
    stores,
    topics,
    nodes: graph.nodes.map(serialiseNode),
  }
}

function configText(config: Readonly<Record<string, string>>): string {
  const entries = Object.entries(config)
  return entries.length === 0 ? '' : ` (${entries.map(([k, v]) => `${k}=${v}`).join(', ')})`
}

export function describeText(description: TopologyDescription): string {
  const lines = [`Topology: ${description.applicationId}`]
  for (const sub of description.subTopologies) {
    lines.push(`   Sub-topology: ${sub.id}`)
    for (const node of sub.nodes) {
      const detail = node.detail ? ` [${node.detail}]` : ''
      if (node.type === 'source') lines.push(`    Source: ${node.name} (topics: [${node.topics!.join(', ')}])${detail}`)
      else if (node.type === 'sink') lines.push(`    Sink: ${node.name} (topic: ${node.topic})${detail}`)
      else lines.push(`    Processor: ${node.name} (stores: [${node.stores!.join(', ')}])${detail}`)
      if (node.type !== 'sink')
        lines.push(`      --> ${node.successors.length > 0 ? node.successors.join(', ') : 'none'}`)
      if (node.type !== 'source')
        lines.push(`      <-- ${node.predecessors.length > 0 ? node.predecessors.join(', ') : 'none'}`)
    }
  }
  lines.push('Stores:')
  for (const store of description.stores)
    lines.push(`    ${store.name} (owner: ${store.owner}, changelog: ${store.changelog})`)
  lines.push('Topics:')
  for (const topic of description.topics) {
    lines.push(
      `    ${topic.role}: ${topic.name} (partitions: ${topic.partitions})${configText(topic.config)}${topic.role === 'source' || topic.role === 'sink' ? '' : ` — ${topic.purpose}`}`,
    )
  }
  return `${lines.join('\n')}\n`
}

function mermaidLabel(text: string): string {
  return `"${text.replaceAll('"', '#quot;')}"`
}

export function describeMermaid(description: TopologyDescription): string {
  const lines = ['flowchart LR']
  const ids = new Map<string, string>()
  const topicIds = new Map<string, string>()
  const storeIds = new Map<string, string>()
  const topicId = (name: string): string => {
    let id = topicIds.get(name)
    if (id === undefined) topicIds.set(name, (id = `t${topicIds.size}`))
    return id
  }
  for (const sub of description.subTopologies) {
    lines.push(`  subgraph sub${sub.id} [${mermaidLabel(`Sub-topology ${sub.id}`)}]`)
    for (const node of sub.nodes) {
      const id = `n${ids.size}`
      ids.set(node.name, id)
      const label = `${node.type === 'source' ? 'Source' : node.type === 'sink' ? 'Sink' : 'Processor'}: ${node.name}${node.detail ? `<br/>${node.detail}` : ''}`
      lines.push(
        node.type === 'processor' ? `    ${id}[${mermaidLabel(label)}]` : `    ${id}([${mermaidLabel(label)}])`,
      )
    }
    lines.push('  end')
  }
  for (const topic of description.topics) {
    if (topic.role === 'changelog') continue
    lines.push(`  ${topicId(topic.name)}[/${mermaidLabel(`${topic.role}: ${topic.name}`)}/]`)
  }
  for (const store of description.stores) {
    const id = `s${storeIds.size}`
    storeIds.set(store.name, id)
    lines.push(`  ${id}[(${mermaidLabel(`store: ${store.name}`)})]`)
  }
  for (const sub of description.subTopologies) {
    for (const node of sub.nodes) {
      const id = ids.get(node.name)!
      for (const topic of node.topics ?? []) lines.push(`  ${topicId(topic)} --> ${id}`)
      for (const next of node.successors) lines.push(`  ${id} --> ${ids.get(next)!}`)
      if (node.topic !== undefined) lines.push(`  ${id} --> ${topicId(node.topic)}`)
      for (const store of node.stores ?? []) {
        const storeId = storeIds.get(store)
        if (storeId !== undefined) lines.push(`  ${id} -.- ${storeId}`)
      }
    }
  }
  return `${lines.join('\n')}\n`
}

export function describe(graph: TopologyGraph, format: DescribeFormat = 'text'): string {
  const description = describeTopology(graph)
  if (format === 'json') return `${JSON.stringify(description, null, 2)}\n`
  if (format === 'mermaid') return describeMermaid(description)
  return describeText(description)
}
