import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError } from '../../errors.ts'
import type { DescribeFormat } from '../../topology/describe.ts'
import { isTopology } from '../../topology/topology.ts'
import { EXIT, type CommandSpec } from '../command.ts'

const FORMATS: readonly DescribeFormat[] = ['text', 'json', 'mermaid']

/**
 * `ragstream describe <topology-file> [--format text|json|mermaid]` — prints the topology a file
 * default-exports: sources, processors, stores, sinks, and every internal topic with its config.
 *
 * @example
 * ```sh
 * ragstream describe topologies/support-tickets.ts
 * ragstream describe topologies/support-tickets.ts --format mermaid > topology.mmd
 * ```
 */
export const describeCommand: CommandSpec = {
  name: 'describe',
  summary: 'Print a topology: sources, processors, stores, sinks and internal topics (text, JSON or Mermaid).',
  args: '<topology-file>',
  options: {
    format: { type: 'string', short: 'f', default: 'text', value: '<text|json|mermaid>', description: 'output format' },
  },
  details:
    'The file must default-export a topology built with the DSL (TopologyBuilder#build()).\nExit codes: 0 ok, 2 usage, 78 invalid topology or file.',
  async run({ positionals, values, stdout, stderr }) {
    const file = positionals[0]
    if (file === undefined || positionals.length > 1) {
      stderr.write('usage: ragstream describe <topology-file> [--format text|json|mermaid]\n')
      return EXIT.usage
    }
    const format = values.format as DescribeFormat
    if (!FORMATS.includes(format))
      throw new ConfigError([{ path: '--format', message: `must be one of ${FORMATS.join(', ')}` }], 'arguments')
    let loaded: { default?: unknown }
    try {
      loaded = (await import(pathToFileURL(resolve(file)).href)) as { default?: unknown }
    } catch (error) {
      if (error instanceof ConfigError) throw error
      throw new ConfigError([{ path: file, message: `cannot load: ${(error as Error).message}` }], 'topology file')
    }
    if (!isTopology(loaded.default)) {
      throw new ConfigError(
        [{ path: file, message: 'must default-export a topology built with TopologyBuilder#build()' }],
        'topology file',
      )
    }
    stdout.write(loaded.default.describe(format))
    return EXIT.ok
  },
}
