/**
 * What every CLI command declares: one spec that is its argument parser, its `--help` text and its
 * docs. Commands live one per file in `src/cli/commands/` and are listed in `src/cli/commands.ts`.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { ConfigError, RagstreamError } from '../errors.ts'
import { maskCredentials } from '../security/secrets.ts'
import { terminalSafe } from '../security/terminal.ts'
import type { RagstreamConfig } from '../config/file.ts'

export interface OptionSpec {
  readonly type: 'string' | 'boolean'
  readonly short?: string
  readonly multiple?: boolean
  readonly default?: string | boolean
  /** One line for `--help`. */
  readonly description: string
  /** Placeholder shown in `--help`, e.g. `<n>`. */
  readonly value?: string
}

export interface CommandSpec {
  readonly name: string
  /** One line for the command list. */
  readonly summary: string
  /** Positional arguments as shown in usage, e.g. `<topology>`. */
  readonly args?: string
  readonly options: Readonly<Record<string, OptionSpec>>
  /** Extra paragraphs for `--help`: examples, exit codes. */
  readonly details?: string
  /** Returns the process exit code. */
  run(input: CommandInput): Promise<number>
}

export interface CommandInput {
  readonly positionals: string[]
  readonly values: Record<string, string | boolean | string[] | undefined>
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  readonly env: NodeJS.ProcessEnv
  /** `--config` file and RAGSTREAM_* variables, validated once by `main` (absent when a command is called directly). */
  readonly config?: RagstreamConfig
}

/** Exit codes shared by all commands. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unavailable: 69, config: 78 } as const

/** Options every command takes (read by `main` before the command runs). */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  config: {
    type: 'string',
    value: '<file.json>',
    description: 'configuration file (docs/operations.md); RAGSTREAM_* variables override it',
  },
}

export function helpText(spec: CommandSpec): string {
  const lines = [
    `ragstream ${spec.name}${spec.args ? ` ${spec.args}` : ''} [options]`,
    '',
    spec.summary,
    '',
    'Options:',
  ]
  const entries = Object.entries({
    ...spec.options,
    ...GLOBAL_OPTIONS,
    help: { type: 'boolean', short: 'h', description: 'show this help' } as OptionSpec,
  })
  const flags = entries.map(
    ([name, o]) =>
      `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? '<value>'}` : ''}`,
  )
  const width = Math.max(...flags.map((f) => f.length)) + 2
  entries.forEach(([, o], i) => {
    const def = o.default === undefined || o.default === false ? '' : ` (default: ${String(o.default)})`
    lines.push(`  ${flags[i].padEnd(width)}${o.description}${def}`)
  })
  if (spec.details) lines.push('', spec.details.trim())
  return `${lines.join('\n')}\n`
}

export function parseCommandArgs(
  spec: CommandSpec,
  argv: string[],
): { positionals: string[]; values: CommandInput['values'] } {
  const options: ParseArgsConfig['options'] = { help: { type: 'boolean', short: 'h' }, config: { type: 'string' } }
  for (const [name, o] of Object.entries(spec.options)) {
    options[name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
      ...(o.default !== undefined ? { default: o.default } : {}),
    }
  }
  try {
    const { positionals, values } = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
    return { positionals, values: values as CommandInput['values'] }
  } catch (error) {
    throw new ConfigError([{ path: `ragstream ${spec.name}`, message: (error as Error).message }], 'arguments')
  }
}

/**
 * Prints an error the way a person at 3 a.m. wants it: code, message, hint; no stack unless
 * RAGSTREAM_DEBUG. Messages quote keys, names and client errors: no password and no escape sequence
 * gets through.
 */
export function formatError(error: unknown, env: NodeJS.ProcessEnv = process.env): string {
  return terminalSafe(errorText(error, env))
}

function errorText(error: unknown, env: NodeJS.ProcessEnv): string {
  if (error instanceof RagstreamError) {
    const hint = error.hint ? `\nhint: ${error.hint}` : ''
    const stack = env.RAGSTREAM_DEBUG ? `\n${maskCredentials(error.stack ?? '')}` : ''
    return `error ${error.code}: ${error.message}${hint}${stack}\n`
  }
  // Not ours: a client library's message may quote a URL with its password.
  return `error: ${maskCredentials(error instanceof Error ? ((env.RAGSTREAM_DEBUG ? error.stack : error.message) ?? '') : String(error))}\n`
}

export function exitCodeFor(error: unknown): number {
  if (!(error instanceof RagstreamError)) return EXIT.failure
  if (error.code === 'RS_CONFIG_INVALID' || error.code === 'RS_TOPOLOGY_INVALID' || error.code === 'RS_TOPIC_MISSING')
    return EXIT.config
  if (error.code === 'RS_SERVICE_UNAVAILABLE') return EXIT.unavailable
  return EXIT.failure
}
