// Bounded waits for runtime tests: every wait names what it waited for, and every runtime a test
// starts is stopped and awaited in t.after, so a failing test never hangs its file.
import { Admin } from '@platformatic/kafka'
import type { KafkaRuntime } from '../../src/runtime/kafka-runtime.ts'
import { endpoints, uniqueName } from './stack.ts'

export type After = { after: (fn: () => Promise<void>) => void }

/** `promise`, or a rejection naming `what` after `ms` (the timer never keeps the test alive). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms).unref()),
      ),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Starts `runtime.run()` and makes sure the test stops it and waits for it (bounded) even when an
 * assertion fails first, so a failing test never leaves a runtime holding the file's event loop.
 */
export function runStopped(t: After, runtime: KafkaRuntime, name: string): Promise<unknown> {
  const running = runtime.run().then(
    () => 'stopped',
    (error: unknown) => error,
  )
  t.after(async () => {
    runtime.stop()
    await within(running, 45_000, `${name} to stop after the test`)
  })
  return running
}

/** Polls `condition` every 50 ms until it holds; rejects naming `what` after `ms`. */
export async function until(what: string, condition: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export async function deleteAfter(t: After, topics: string[]): Promise<void> {
  t.after(async () => {
    const admin = new Admin({ clientId: uniqueName('cleanup'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
    await admin.deleteTopics({ topics }).catch(() => {})
    await admin.close()
  })
}
