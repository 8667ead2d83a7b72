/**
 * Containment of Kafka client bugs that throw outside any promise.
 *
 * @platformatic/kafka runs its protocol callbacks from socket events, so an exception inside one
 * (2.12.1: `Transaction.abort()` on a producer whose InitProducerId failed reads `producerId` of
 * undefined, see docs/operations.md "Known client issues") escapes every promise: nothing in the
 * caller can catch it and, by Node's default, the process ends. One such bug left a single-instance
 * deployment down. While a runtime runs, an uncaught exception whose top stack frame lies inside the
 * Kafka client is handed to the running runtimes instead, which replace what may now be broken (the
 * producer is never reused; a consumer fault rejoins the group). Every other uncaught exception —
 * ours, a user's, another library's — keeps Node's behaviour: it goes to the `uncaughtException`
 * listeners when there are any, else it is printed and the process exits 1.
 *
 * Node's capture callback (not an `uncaughtException` listener) is used so that a contained fault
 * reaches no other listener: a test runner would count it as a failure of whatever test runs.
 */
import { inspect } from 'node:util'
import { maskCredentials } from '../security/secrets.ts'

/** Which client the fault came from, by the file of the throwing frame. */
export type KafkaClientPart = 'producer' | 'consumer' | 'client'

export interface ClientFault {
  readonly error: Error
  readonly part: KafkaClientPart
}

type Handler = (fault: ClientFault) => void

const handlers = new Set<Handler>()
let installed = false

const CLIENT_FRAME = /[\\/]@platformatic[\\/]kafka[\\/]/

/** The fault, when `error` was thrown by the Kafka client's own code (its top stack frame is in the client). */
export function kafkaClientFault(error: unknown): ClientFault | undefined {
  if (!(error instanceof Error) || typeof error.stack !== 'string') return undefined
  const top = error.stack.split('\n').find((line) => line.trimStart().startsWith('at '))
  if (top === undefined || !CLIENT_FRAME.test(top)) return undefined
  const part = /[\\/]clients[\\/]producer[\\/]/.test(top)
    ? 'producer'
    : /[\\/]clients[\\/]consumer[\\/]/.test(top)
      ? 'consumer'
      : 'client'
  return { error, part }
}

function capture(error: unknown): void {
  const fault = handlers.size > 0 ? kafkaClientFault(error) : undefined
  if (fault) {
    for (const handler of handlers) handler(fault)
    return
  }
  // Not the client's: what Node would have done without the capture callback.
  if (process.listenerCount('uncaughtException') > 0) {
    const emit = process.emit.bind(process) as (event: string, ...args: unknown[]) => boolean
    emit('uncaughtException', error, 'uncaughtException')
    return
  }
  process.stderr.write(`${maskCredentials(inspect(error))}\n\nNode.js ${process.version}\n`)
  process.exit(1)
}

/**
 * Hands Kafka client exceptions thrown outside any promise to `handler` until the returned function
 * is called. Returns false as `contained` when another capture callback is already set (then faults
 * are not contained, and Node's behaviour is unchanged).
 */
export function containClientFaults(handler: Handler): { readonly contained: boolean; release(): void } {
  if (!installed) {
    if (process.hasUncaughtExceptionCaptureCallback()) return { contained: false, release: () => {} }
    process.setUncaughtExceptionCaptureCallback(capture)
    installed = true
  }
  handlers.add(handler)
  return {
    contained: true,
    release: () => {
      handlers.delete(handler)
      if (handlers.size === 0 && installed) {
        process.setUncaughtExceptionCaptureCallback(null)
        installed = false
      }
    },
  }
}
