// Minimal repro of a @platformatic/kafka 2.12.1 bug (docs/operations.md "Known client issues"): a
// transactional producer whose InitProducerId failed keeps a half-open transaction with no producer
// id, and `abort()` on it throws `TypeError: Cannot read properties of undefined (reading
// 'producerId')` from inside the client (producer.js, the EndTxn call) instead of failing its callback.
// In production InitProducerId failed because the broker was down, and the abort ran after a
// reconnect, so the throw came from a network callback, outside any promise, and ended the process.
// Here InitProducerId fails at once (a transaction timeout above the broker's
// transaction.max.timeout.ms) and the abort runs from a timer: outside any promise too.
//
//   node test/support/kafka-abort-repro.ts <brokers> bare     → the process dies (exit 1)
//   node test/support/kafka-abort-repro.ts <brokers> contain  → contained: prints the fault, exit 0
//   node test/support/kafka-abort-repro.ts <brokers> other    → another uncaught throw, guard on: exit 1
import { Producer } from '@platformatic/kafka'
import { containClientFaults, type ClientFault } from '../../src/runtime/client-faults.ts'

/** Triggers the bug; resolves with how `beginTransaction` failed. */
export async function abortWithoutProducerId(brokers: readonly string[]): Promise<string> {
  const producer = new Producer({
    clientId: 'abort-repro',
    bootstrapBrokers: [...brokers],
    transactionalId: `abort-repro-${process.pid}-${Date.now()}`,
    idempotent: true,
    producerId: -1n,
    producerEpoch: -1,
    timeout: 3_600_000,
    retries: 0,
  })
  const begun = await producer.beginTransaction().then(
    () => 'began',
    (error: Error) => `begin failed: ${error.message}`,
  )
  const transaction = producer.transaction
  if (transaction) setTimeout(() => void transaction.abort().catch(() => {}), 0)
  await new Promise((resolve) => setTimeout(resolve, 500))
  await producer.close(true).catch(() => {})
  return begun
}

if (import.meta.main) {
  const [brokers, mode] = process.argv.slice(2)
  const faults: ClientFault[] = []
  if (mode !== 'bare') containClientFaults((fault) => void faults.push(fault))
  if (mode === 'other') setTimeout(() => void (null as unknown as { x: number }).x, 10)
  else {
    const begun = await abortWithoutProducerId(brokers.split(','))
    process.stdout.write(
      `${JSON.stringify({ begun, faults: faults.map((f) => ({ part: f.part, message: f.error.message })) })}\n`,
    )
  }
}
