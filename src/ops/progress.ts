/**
 * The progress line `ragstream run` and `ragstream sink` print every few seconds on a terminal
 * (or with RAGSTREAM_LOG_FORMAT=human): what went in and out, the lag, dead letters and how long ago
 * the last commit was. In JSON-log mode (a pipe, RAGSTREAM_LOG_FORMAT=json) nothing is printed: the
 * metrics endpoint carries the same numbers.
 */

/** The rule `eventWriter` uses: human lines on a terminal unless RAGSTREAM_LOG_FORMAT says json. */
export function isHumanOutput(out: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  const format = env.RAGSTREAM_LOG_FORMAT
  return format === 'human' || (format !== 'json' && Boolean(out.isTTY))
}

/** `3s ago`, `2m05s ago`, `never`. */
export function ago(at: number | undefined, now = Date.now()): string {
  if (at === undefined) return 'never'
  const s = Math.max(0, Math.round((now - at) / 1000))
  return s < 60 ? `${s}s ago` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s ago`
}

/**
 * Writes `line()` (prefixed with the time) every `intervalMs` while human output is on; returns a stop
 * function. A failing `line()` prints nothing for that tick.
 */
export function startProgress(o: {
  readonly out: NodeJS.WritableStream & { isTTY?: boolean }
  readonly env?: NodeJS.ProcessEnv
  readonly intervalMs?: number
  readonly line: () => string | Promise<string>
}): () => void {
  if (!isHumanOutput(o.out, o.env)) return () => {}
  let busy = false
  const timer = setInterval(() => {
    if (busy) return
    busy = true
    Promise.resolve()
      .then(o.line)
      .then(
        (text) => void o.out.write(`${new Date().toISOString().slice(11, 19)} progress  ${text}\n`),
        () => {},
      )
      .finally(() => (busy = false))
  }, o.intervalMs ?? 5000)
  timer.unref()
  return () => clearInterval(timer)
}
