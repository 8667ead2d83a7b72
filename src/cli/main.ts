import { readFileSync } from 'node:fs'
import { COMMANDS } from './commands.ts'
import { loadConfig } from '../config/file.ts'
import { EXIT, exitCodeFor, formatError, helpText, parseCommandArgs } from './command.ts'
import { packageFile } from '../package-files.ts'
import { terminalSafe } from '../security/terminal.ts'

const pkg = JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }

async function usage(): Promise<string> {
  const specs = await Promise.all(Object.values(COMMANDS).map((load) => load()))
  const width = Math.max(...specs.map((s) => s.name.length)) + 2
  return [
    'ragstream — real-time RAG ingestion on Kafka, with Kafka Streams semantics',
    '',
    'Usage: ragstream <command> [options]   (ragstream <command> --help for details)',
    '',
    'Commands:',
    ...specs.map((s) => `  ${s.name.padEnd(width)}${s.summary}`),
    '',
  ].join('\n')
}

export async function main(
  argv: string[],
  io = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(await usage())
    return name ? EXIT.ok : EXIT.usage
  }
  if (name === '--version' || name === '-v') {
    io.stdout.write(`${pkg.version}\n`)
    return EXIT.ok
  }
  const load = COMMANDS[name]
  if (!load) {
    io.stderr.write(
      `error: unknown command '${terminalSafe(name, { singleLine: true })}'\nhint: run 'ragstream --help' for the list of commands\n`,
    )
    return EXIT.usage
  }
  const spec = await load()
  try {
    const { positionals, values } = parseCommandArgs(spec, rest)
    if (values.help) {
      io.stdout.write(helpText(spec))
      return EXIT.ok
    }
    const config = loadConfig({ file: typeof values.config === 'string' ? values.config : undefined, env: io.env })
    // Topology files read process.env themselves (RagServices.fromEnv): file values reach them too.
    if (io.env === process.env) for (const [k, v] of Object.entries(config.env)) process.env[k] ??= v
    return await spec.run({ positionals, values, ...io, env: config.env, config })
  } catch (error) {
    io.stderr.write(formatError(error, io.env))
    return exitCodeFor(error)
  }
}
