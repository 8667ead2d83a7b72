/**
 * A built topology: the frozen, validated logical graph, plus describe and compile. What
 * an app builds (`defineApp`, src/app/app.ts) and what `ragstream describe|run` and the test driver take.
 */
import type { ProcessorTopology } from '../runtime/task.ts'
import { compileTopology, type CompileOptions } from './compile.ts'
import { describe, describeTopology, type DescribeFormat, type TopologyDescription } from './describe.ts'
import type { TopologyGraph } from './graph.ts'
import { validateTopology } from './validate.ts'

export class Topology {
  readonly graph: TopologyGraph

  /** Validates once; throws one ConfigError (RS_TOPOLOGY_INVALID) listing every problem. */
  constructor(graph: TopologyGraph) {
    validateTopology(graph)
    this.graph = Object.freeze({ ...graph, nodes: Object.freeze([...graph.nodes]) })
  }

  get applicationId(): string {
    return this.graph.applicationId
  }

  /** Kafka-style text (default), `json` or `mermaid`. */
  describe(format: DescribeFormat = 'text'): string {
    return describe(this.graph, format)
  }

  toJSON(): TopologyDescription {
    return describeTopology(this.graph)
  }

  /** The runtime form; `partitions` is the (co-partitioned) source topics' partition count. */
  compile(options: CompileOptions): ProcessorTopology {
    return compileTopology(this.graph, options)
  }
}

export function isTopology(value: unknown): value is Topology {
  return value instanceof Topology
}
