import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { ConfigError } from '../../errors.ts'
import { packageFile } from '../../package-files.ts'
import { EXIT, type CommandSpec } from '../command.ts'

/**
 * `ragstream new <name>` — scaffolds an app: its topology file, a unit test with the test driver that
 * passes with no service running, and a config file naming the app.
 *
 * @example
 * ```sh
 * mkdir reviews && cd reviews && ragstream new reviews && npm install && npm test
 * ragstream describe reviews
 * ```
 */
export const newCommand: CommandSpec = {
  name: 'new',
  summary: 'Scaffold an app: topology file, a unit test with the test driver, and a config file.',
  args: '<name>',
  options: {
    dir: { type: 'string', value: '<dir>', description: 'the project directory (default: the working directory)' },
    force: { type: 'boolean', description: 'overwrite files that exist' },
  },
  details: [
    'Writes src/<name>.ts (the app: defineApp), test/<name>.test.ts (runs offline: in-memory services),',
    'ragstream.json ({ "apps": { "<name>": "src/<name>.ts" } }, unless one exists: then add the app to it yourself)',
    'and package.json when there is none. Next: npm install && npm test, then docs/your-own-topology.md.',
    'Exit codes: 0 written, 2 usage, 78 a bad name or a file that exists (without --force).',
  ].join('\n'),
  async run({ positionals, values, stdout, stderr }) {
    const name = positionals[0]
    if (name === undefined || positionals.length > 1) {
      stderr.write('usage: ragstream new <name> [--dir <dir>] [--force]\n')
      return EXIT.usage
    }
    if (values.dir !== undefined && typeof values.dir !== 'string')
      throw new ConfigError([{ path: '--dir', message: 'expected a directory' }], 'arguments')
    const dir = resolve(typeof values.dir === 'string' ? values.dir : '.')
    const { scaffold } = await import('../../app/scaffold.ts')
    const version = (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }).version
    const result = scaffold({ name, dir, force: Boolean(values.force), version })
    for (const file of result.files) stdout.write(`created ${file}\n`)
    for (const file of result.skipped) stdout.write(`kept    ${file} (add "${name}": "src/${name}.ts" to its "apps")\n`)
    stdout.write(
      `\nnext:\n  npm install            # when package.json is new\n  npm test               # the generated test: no service needed\n  npx ragstream describe ${name}\n  npx ragstream run ${name}      # against your Kafka (docs/your-own-topology.md)\n`,
    )
    return EXIT.ok
  },
}
