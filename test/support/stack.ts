// Shared helpers for integration tests against the real local stack (scripts/stack.sh up).
import { randomUUID } from 'node:crypto'
import { Admin } from '@platformatic/kafka'
import { endpointsFromEnv, type Endpoints } from '../../src/config/endpoints.ts'

/**
 * The stack's endpoints, read from the environment at each use, not when this module loads: a test
 * that points its fixtures at a private broker or server sets the variable before importing them, and
 * a helper imported earlier (test/support/local.ts via private-kafka.ts) must not pin the defaults.
 */
export const endpoints: Endpoints = new Proxy({} as Endpoints, {
  get: (_, name) => endpointsFromEnv()[name as keyof Endpoints],
})

/** A name no other test (or earlier run) uses: topics, groups, keys and subjects are per test. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

/** Creates fresh topics and deletes them when the test ends. */
export async function createTopics(
  t: { after: (fn: () => Promise<void>) => void },
  topics: string[],
  partitions = 1,
  configs: { name: string; value: string }[] = [],
): Promise<void> {
  const admin = new Admin({ clientId: uniqueName('test-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  await admin.createTopics({ topics, partitions, replicas: 1, configs })
  t.after(async () => {
    await admin.deleteTopics({ topics }).catch(() => {})
    await admin.close()
  })
}
