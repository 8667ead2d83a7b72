/**
 * Logs as JSON lines (pino) for machines, or one readable line per event on a terminal. Secrets never
 * reach a log line: known secret-bearing keys are redacted and URLs lose their passwords.
 */
import { pino, type Logger, type DestinationStream } from 'pino'
import { maskCredentials } from '../security/secrets.ts'
import { terminalSafe } from '../security/terminal.ts'

export type { Logger }

const REDACT = [
  'password',
  'apiKey',
  'api_key',
  'authorization',
  'secret',
  'token',
  '*.password',
  '*.apiKey',
  '*.authorization',
  '*.secret',
  '*.token',
]

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
}

/** A destination that renders pino's JSON as `HH:MM:SS LEVEL [component] message key=value`. */
function humanDestination(out: NodeJS.WritableStream): DestinationStream {
  return {
    write(line: string) {
      const {
        level,
        time,
        msg,
        component,
        pid: _pid,
        hostname: _host,
        ...rest
      } = JSON.parse(line) as Record<string, unknown>
      const clock = new Date(Number(time)).toISOString().slice(11, 19)
      const fields = Object.entries(rest)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ')
      const text = `${clock} ${(LEVEL_NAMES[Number(level)] ?? String(level)).padEnd(5)} ${component ? `[${String(component)}] ` : ''}${String(msg ?? '')}${fields ? `  ${fields}` : ''}`
      out.write(`${terminalSafe(maskCredentials(text), { singleLine: true })}\n`)
    },
  }
}

export interface LoggerOptions {
  readonly level?: string
  /** json | human | auto (human on a TTY). Default from RAGSTREAM_LOG_FORMAT, else auto. */
  readonly format?: 'json' | 'human' | 'auto'
  readonly destination?: NodeJS.WritableStream & { isTTY?: boolean }
}

export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const out = options.destination ?? process.stderr
  const format = options.format ?? ((process.env.RAGSTREAM_LOG_FORMAT as LoggerOptions['format']) || 'auto')
  const human = format === 'human' || (format === 'auto' && Boolean(out.isTTY))
  const level = options.level ?? process.env.RAGSTREAM_LOG_LEVEL ?? 'info'
  const base = { level, redact: { paths: REDACT, censor: '***' }, base: { component } }
  // Messages quote client errors, which may quote URLs with their passwords: masked on the way out.
  const masked: DestinationStream = { write: (line: string) => void out.write(maskCredentials(line)) }
  return pino(base, human ? humanDestination(out) : masked)
}
