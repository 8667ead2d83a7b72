import { isApp } from '../../app/app.ts'
import { describeApp } from '../../app/describe.ts'
import { loadAppOrTopology } from '../../app/load.ts'
import { loadConfig } from '../../config/file.ts'
import { ConfigError } from '../../errors.ts'
import type { DescribeFormat } from '../../topology/describe.ts'
import { EXIT, type CommandSpec } from '../command.ts'
import { jsonSafe, terminalSafe } from '../../security/terminal.ts'

const FORMATS: readonly DescribeFormat[] = ['text', 'json', 'mermaid']

/**
 * `ragstream describe <topology-file> [--format text|json|mermaid]` — prints the topology a file
 * default-exports: sources, processors, stores, sinks, and every internal topic with its config.
 *
 * @example
 * ```sh
 * ragstream describe support-copilot
 * ragstream describe src/reviews.ts --format mermaid > topology.mmd
 * ```
 */
export const describeCommand: CommandSpec = {
  name: 'describe',
  summary: 'Print a topology: sources, processors, stores, sinks and internal topics (text, JSON or Mermaid).',
  args: '<app>',
  options: {
    version: { type: 'string', value: '<v>', description: 'the version of an app to describe (default v1)' },
    prefix: { type: 'string', value: '<prefix>', description: "an app's source topic prefix (default its own)" },
    format: { type: 'string', short: 'f', default: 'text', value: '<text|json|mermaid>', description: 'output format' },
  },
  details:
    '<app> is a topology file, a name from /apps of the config file, or a reference app (support-copilot,\nknowledge-base). The file default-exports an app (defineApp) or a topology built with the DSL.\nExit codes: 0 ok, 2 usage, 78 invalid topology or file.',
  async run({ positionals, values, stdout, stderr, env, config: given }) {
    const file = positionals[0]
    if (file === undefined || positionals.length > 1) {
      stderr.write('usage: ragstream describe <app> [--format text|json|mermaid]\n')
      return EXIT.usage
    }
    const format = values.format as DescribeFormat
    if (!FORMATS.includes(format))
      throw new ConfigError([{ path: '--format', message: `must be one of ${FORMATS.join(', ')}` }], 'arguments')
    const loaded = await loadAppOrTopology(file, (given ?? loadConfig({ env })).apps)
    const version = values.version as string | undefined
    const prefix = values.prefix as string | undefined
    // Names in a topology file are the file's to choose: printed, they are data like any other.
    const print = (text: string): boolean => stdout.write(format === 'json' ? jsonSafe(text) : terminalSafe(text))
    if (isApp(loaded)) print(describeApp(loaded, format, { version, prefix, env }))
    else if (version !== undefined || prefix !== undefined)
      throw new ConfigError(
        [
          {
            path: version !== undefined ? '--version' : '--prefix',
            message: `${file} exports a bare topology, not an app`,
          },
        ],
        'arguments',
      )
    else print(loaded.describe(format))
    return EXIT.ok
  },
}
