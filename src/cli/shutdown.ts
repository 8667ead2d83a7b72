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
