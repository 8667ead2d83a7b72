/**
 * How `ragstream run` and `ragstream sink` print their events: one JSON object per line for log
 * shippers and tests, or — when the stream is a terminal, or RAGSTREAM_LOG_FORMAT=human — one
 * readable line (`12:03:04 batch-committed  partition=2 records=500`). RAGSTREAM_LOG_FORMAT=json forces JSON.
 */
import { maskCredentials } from '../security/secrets.ts'
import { jsonSafe, terminalSafe } from '../security/terminal.ts'

const bigintSafe = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value)

export function eventWriter(
  out: NodeJS.WritableStream & { isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
): (event: object) => void {
  const format = env.RAGSTREAM_LOG_FORMAT
  const human = format === 'human' || (format !== 'json' && Boolean(out.isTTY))
  // Events quote errors of clients and records' keys: no password and (on a terminal) no escape sequence gets through.
  if (!human) return (event) => void out.write(`${jsonSafe(maskCredentials(JSON.stringify(event, bigintSafe)))}\n`)
  return (event) => {
    const { event: name, time, host: _host, ...fields } = event as Record<string, unknown>
    const clock = (typeof time === 'string' ? time : new Date().toISOString()).slice(11, 19)
    const rest = Object.entries(fields)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v, bigintSafe)}`)
      .join(' ')
    const line = `${clock} ${String(name ?? 'event')}${rest ? `  ${rest}` : ''}`
    out.write(`${terminalSafe(maskCredentials(line), { singleLine: true })}\n`)
  }
}
