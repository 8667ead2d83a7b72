/**
 * The shutdown deadline of the long-running commands (`ragstream run`, `ragstream sink`).
 */
import { EXIT } from './command.ts'

/**
 * A signal handler for a long-running command: the first signal calls `stop()` and arms a deadline
 * (unref'd, so it never delays a clean exit); if the process is still alive when it passes — the
 * graceful stop hangs, or something left open keeps the event loop running — it logs what the
 * command was waiting for and the resources still open, and exits 1. A second signal exits 1 at once.
 */
export function exitUnlessStoppedWithin(
  timeoutMs: number,
  stop: () => void,
  waitingFor: () => string,
  log: (event: Record<string, unknown>) => void,
): (signal: NodeJS.Signals) => void {
  let signalled = 0
  return (signal) => {
    signalled++
    if (signalled > 1) {
      log({ event: 'shutdown-timeout', signal, reason: 'second signal', waitingFor: waitingFor() })
      process.exit(EXIT.failure)
    }
    setTimeout(() => {
      log({
        event: 'shutdown-timeout',
        signal,
        timeoutMs,
        waitingFor: waitingFor(),
        open: process.getActiveResourcesInfo().filter((r) => r !== 'Timeout'),
      })
      process.exit(EXIT.failure)
    }, timeoutMs).unref()
    stop()
  }
}

/**
 * Called when a long-running command's graceful stop has finished (every client it opened is closed
 * or abandoned): the process exits when its event loop drains. If something a client library left
 * running still holds it after `graceMs` (a timer: @platformatic/kafka re-arms a consumer's heartbeat
 * for a rejoin that raced its close, and retries it on the closed connections without end), it logs
 * what is still open (event exit-forced) and exits with the command's exit code, instead of waiting
 * for the shutdown deadline to exit 1 after a stop that succeeded. Unref'd: a clean exit is not delayed.
 */
export function exitWhenStopped(log: (event: Record<string, unknown>) => void, graceMs = 2_000): void {
  setTimeout(() => {
    log({ event: 'exit-forced', graceMs, open: process.getActiveResourcesInfo() })
    process.exit(process.exitCode ?? EXIT.ok)
  }, graceMs).unref()
}
