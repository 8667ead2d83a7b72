// Smoke: a Redis round trip on the configured server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { checkRedis } from '../../src/config/services.ts'
import { endpoints, uniqueName } from '../support/stack.ts'

test('redis: set, get and delete a binary value', async (t) => {
  await checkRedis(endpoints.redisUrl)
  const redis = new Redis(endpoints.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  t.after(() => redis.quit())
  const key = uniqueName('smoke:redis')
  const value = Buffer.from([0, 1, 2, 255, 254])
  await redis.set(key, value, 'EX', 60)
  assert.deepEqual(await redis.getBuffer(key), value)
  assert.equal(await redis.del(key), 1)
  assert.equal(await redis.getBuffer(key), null)
})
