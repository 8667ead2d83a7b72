// Shared helpers for integration tests against the real local stack (scripts/stack.sh up).
import { randomUUID } from 'node:crypto'
import { Admin } from '@platformatic/kafka'
import { endpointsFromEnv } from '../../src/config/endpoints.ts'

export const endpoints = endpointsFromEnv()

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
