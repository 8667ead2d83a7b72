// Small local helpers shared by tests: a free loopback port, a test's Redis state stores and deleting its keys.
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import type { StateStore } from '../../src/state/store.ts'
import { endpoints } from './stack.ts'

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** Deletes every key matching `pattern` (SCAN, never KEYS: the Redis is shared with other tests). */
export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    if (keys.length > 0) await redis.del(...keys)
    cursor = next
  } while (cursor !== '0')
}

/** An application's Redis state stores for a topology; closed and its keys deleted after the test. */
export function redisStoresFor(
  t: { after: (fn: () => Promise<void>) => void },
  applicationId: string,
  storeNames: readonly string[],
): Map<string, StateStore> {
  const backend = new RedisStateBackend({ applicationId, target: { kind: 'single', url: endpoints.redisUrl } })
  t.after(async () => {
    await backend.close()
    const redis = new Redis(endpoints.redisUrl)
    await deleteKeys(redis, `rs:{${applicationId}*`)
    await redis.quit()
  })
  return new Map(storeNames.map((name) => [name, backend.store(name)]))
}
