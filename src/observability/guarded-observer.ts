/**
 * Observers (the runtime's `onEvent`, the sink's `log`) are the caller's code. A throw there must not
 * abort the batch or assignment it reports on: the runtime retried such an assignment for ever, the sink
 * never wrote its batch. The guarded observer swallows the throw and says the first one on stderr.
 */
export function guardedObserver<E extends { readonly event: string }>(
  what: string,
  observer: ((event: E) => void) | undefined,
): (event: E) => void {
  if (observer === undefined) return () => {}
  let failed = false
  return (event) => {
    try {
      observer(event)
    } catch (error) {
      if (failed) return
      failed = true
      process.stderr.write(
        `ragstream: ${what} threw on a '${event.event}' event (${error instanceof Error ? error.message : String(error)}); processing goes on, further throws are not reported\n`,
      )
    }
  }
}
