// The Redis state store on the single local Redis: the conformance suite, plus what only a real
// server can show (atomic flushes, failures surfacing as retriable errors that name Redis).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkRedis } from '../../src/config/services.ts'
import { RagstreamError, ServiceUnavailableError, isRetriable } from '../../src/errors.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { endpoints, uniqueName } from '../support/stack.ts'
import { stateStoreConformance } from './conformance.ts'
import { freePort } from '../support/local.ts'
import { redisStoreHarness, startPrivateRedis } from './redis-harness.ts'

const single = { kind: 'single', url: endpoints.redisUrl } as const

stateStoreConformance('redis store', async (t) => {
  await checkRedis(endpoints.redisUrl)
  return redisStoreHarness(t, single)
})

test('redis store: a flush is atomic: a concurrent reader sees all of it with its checkpoint, or none', async (t) => {
  await checkRedis(endpoints.redisUrl)
  const h = await redisStoreHarness(t, single)
  const store = h.open('orders')
  const key = h.backend.partitionKey('orders', 0)
  const client = h.backend.client
  for (let i = 0; i < 20_000; i++) store.put(0, `k${i}`, Buffer.from(`v${i}`))
  let done = false
  const observed = new Set<string>()
  const reader = (async () => {
    while (!done) {
      const replies = await client.multi().hget(key, 'checkpoint').hlen(key).exec()
      observed.add(`${replies?.[0][1]}/${replies?.[1][1]}`)
    }
  })()
  await store.flush(new Map([[0, 7n]]))
  done = true
  await reader
  for (const seen of observed) assert.ok(seen === 'null/0' || seen === '7/20001', `a reader saw a torn flush: ${seen}`)
  assert.ok(observed.has('7/20001'))
})

test('redis store: a refused connection is a retriable RS_SERVICE_UNAVAILABLE naming Redis and the address, never the password', async (t) => {
  const port = await freePort()
  const backend = new RedisStateBackend({
    applicationId: uniqueName('rs-test'),
    target: { kind: 'single', url: `redis://:s3cret-pw@127.0.0.1:${port}` },
  })
  t.after(() => backend.close())
  const store = backend.store('orders')
  const started = Date.now()
  for (const operation of [
    () => store.checkpoint(0),
    () => store.prefetch(0, ['k']),
    () => store.flush(new Map([[0, 1n]])),
  ]) {
    await assert.rejects(operation(), (error: unknown) => {
      assert.ok(error instanceof ServiceUnavailableError, String(error))
      assert.equal(error.code, 'RS_SERVICE_UNAVAILABLE')
      assert.ok(isRetriable(error))
      assert.match(error.message, new RegExp(`^Redis is not reachable at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}`))
      assert.match(error.message, /ECONNREFUSED/)
      assert.doesNotMatch(error.message, /s3cret/)
      assert.equal(error.context.service, 'Redis')
      return true
    })
  }
  assert.ok(Date.now() - started < 10_000, 'a refused connection fails fast instead of queueing the batch')
})

test('redis store: a stalled server fails the operation within the time bound, and a restarted server is found again', async (t) => {
  const redis = await startPrivateRedis(t)
  const backend = new RedisStateBackend({
    applicationId: uniqueName('rs-test'),
    target: { kind: 'single', url: redis.url },
    operationTimeoutMs: 500,
  })
  t.after(() => backend.close())
  const store = backend.store('orders')
  store.put(0, 'k', Buffer.from('v'))
  await store.flush(new Map([[0, 1n]]))

  // Paused ten times the bound: failing well before the pause ends proves the bound, with room for a loaded machine.
  await redis.admin.call('CLIENT', 'PAUSE', '5000', 'ALL')
  const started = Date.now()
  await assert.rejects(store.checkpoint(0), (error: unknown) => {
    assert.ok(error instanceof ServiceUnavailableError)
    // Whichever fires first: the store's operation bound or the client's command timeout (both 500 ms).
    assert.match(
      error.message,
      /Redis is not reachable at redis:\/\/127\.0\.0\.1:\d+.*(no answer within 500 ms|Command timed out)/,
    )
    return true
  })
  assert.ok(Date.now() - started < 4_000, `failed after ${Date.now() - started} ms, not when the 5 s pause ended`)
  await redis.admin.call('CLIENT', 'UNPAUSE')

  await redis.stop()
  await assert.rejects(
    store.checkpoint(0),
    (error: unknown) => error instanceof ServiceUnavailableError && error.retriable,
  )
  await redis.start() // a restart without persistence: Redis lost everything
  let checkpoint: bigint | undefined | 'failed' = 'failed'
  for (let attempt = 0; attempt < 50 && checkpoint === 'failed'; attempt++) {
    checkpoint = await store.checkpoint(0).catch(async () => {
      await new Promise((resolve) => setTimeout(resolve, 100))
      return 'failed' as const
    })
  }
  assert.equal(checkpoint, undefined, 'the same backend reconnects; an empty server has no checkpoint (restore from 0)')
})

test('redis store: a server still loading its dataset (LOADING) fails operations as retriable, then serves the loaded state', async (t) => {
  const redis = await startPrivateRedis(t, ['--enable-debug-command', 'yes'])
  const applicationId = uniqueName('rs-test')
  const writer = new RedisStateBackend({ applicationId, target: { kind: 'single', url: redis.url } })
  t.after(() => writer.close())
  const store = writer.store('orders')
  store.put(0, 'k', Buffer.from('v'))
  await store.flush(new Map([[0, 5n]]))
  // A dataset that takes a while to load, snapshotted, and a restart that loads it.
  await redis.admin.call('DEBUG', 'POPULATE', '1500000', 'filler', '32')
  await redis.admin.call('SAVE')
  await redis.stop()
  await redis.start({ untilLoaded: false })

  const reader = new RedisStateBackend({
    applicationId,
    target: { kind: 'single', url: redis.url },
    operationTimeoutMs: 200,
  })
  t.after(() => reader.close())
  const restarted = reader.store('orders')
  await assert.rejects(restarted.checkpoint(0), (error: unknown) => {
    assert.ok(error instanceof ServiceUnavailableError, String(error))
    assert.ok(error.retriable)
    assert.match(
      error.message,
      /^Redis is not reachable at redis:\/\/127\.0\.0\.1:\d+: read checkpoint of store "orders" partition 0/,
    )
    return true
  })
  assert.match(
    String(await redis.admin.info('persistence')),
    /loading:1/,
    'the failure above happened while Redis was loading',
  )
  let checkpoint: bigint | undefined | 'loading' = 'loading'
  for (let attempt = 0; attempt < 100 && checkpoint === 'loading'; attempt++) {
    checkpoint = await restarted.checkpoint(0).catch(async (error: unknown) => {
      assert.ok(error instanceof ServiceUnavailableError)
      await new Promise((resolve) => setTimeout(resolve, 100))
      return 'loading' as const
    })
  }
  assert.equal(checkpoint, 5n)
  await restarted.prefetch(0, ['k'])
  assert.deepEqual(restarted.get(0, 'k'), Buffer.from('v'))
})

test('redis store: Redis losing everything (FLUSHALL on a private server) leaves no checkpoint', async (t) => {
  const redis = await startPrivateRedis(t)
  const backend = new RedisStateBackend({
    applicationId: uniqueName('rs-test'),
    target: { kind: 'single', url: redis.url },
  })
  t.after(() => backend.close())
  const store = backend.store('orders')
  store.put(0, 'k', Buffer.from('v'))
  store.put(1, 'k', Buffer.from('v'))
  await store.flush(
    new Map([
      [0, 10n],
      [1, 20n],
    ]),
  )
  assert.equal(await store.checkpoint(0), 10n)
  await redis.admin.flushall()
  assert.equal(await store.checkpoint(0), undefined)
  assert.equal(await store.checkpoint(1), undefined)
})

test('redis store: a write after Redis lost the partition is refused with RS_STATE_LOST instead of recreating it with one batch', async (t) => {
  const redis = await startPrivateRedis(t)
  const backend = new RedisStateBackend({
    applicationId: uniqueName('rs-test'),
    target: { kind: 'single', url: redis.url },
  })
  t.after(() => backend.close())
  const store = backend.store('orders')
  const key = backend.partitionKey('orders', 0)
  store.put(0, 'a', Buffer.from('a'))
  store.put(0, 'b', Buffer.from('b'))
  await store.flush(new Map([[0, 10n]]))

  // Redis restarts without persistence between two batches.
  await redis.admin.flushall()
  store.put(0, 'c', Buffer.from('c'))
  await assert.rejects(store.flush(new Map([[0, 20n]])), (error: unknown) => {
    assert.ok(error instanceof RagstreamError && error.code === 'RS_STATE_LOST', String(error))
    assert.equal(error.recovery, 'restore', 'the runtime restores the partition from its changelog')
    assert.match(error.message, /Redis holds checkpoint none, but this instance last saw 10/)
    return true
  })
  assert.equal(await redis.admin.exists(key), 0, 'nothing was recreated')
  await assert.rejects(
    store.restore(0, [{ key: 'c', value: Buffer.from('c') }], 21n),
    (error: unknown) => error instanceof RagstreamError && error.code === 'RS_STATE_LOST',
  )

  // The runtime's way back: read the checkpoint (none), clear, restore from the changelog.
  assert.equal(await store.checkpoint(0), undefined)
  await store.clear(0)
  await store.restore(
    0,
    [
      { key: 'a', value: Buffer.from('a') },
      { key: 'b', value: Buffer.from('b') },
      { key: 'c', value: Buffer.from('c') },
    ],
    21n,
  )
  store.discard()
  store.put(0, 'd', Buffer.from('d'))
  await store.flush(new Map([[0, 30n]]))

  // Redis comes back from an older snapshot: the stored checkpoint went backwards.
  await redis.admin.hset(key, 'checkpoint', '21')
  store.put(0, 'e', Buffer.from('e'))
  await assert.rejects(
    store.flush(new Map([[0, 40n]])),
    (error: unknown) => error instanceof RagstreamError && error.code === 'RS_STATE_LOST',
  )
  store.discard()

  // A flush whose first attempt did reach Redis (an uncertain outcome) may be retried: same checkpoint, accepted.
  const other = backend.store('orders')
  assert.equal(await store.checkpoint(0), 21n)
  other.put(0, 'e', Buffer.from('e'))
  await other.flush(new Map([[0, 40n]]))
  store.put(0, 'e', Buffer.from('e'))
  await store.flush(new Map([[0, 40n]]))
  assert.equal(await store.checkpoint(0), 40n)
})

test('redis store: names that would break topic names or hash tags are refused up front', async (t) => {
  assert.throws(
    () => new RedisStateBackend({ applicationId: 'app}{x', target: single }),
    (error: unknown) =>
      error instanceof RagstreamError && error.code === 'RS_CONFIG_INVALID' && /\/applicationId/.test(error.message),
  )
  const backend = new RedisStateBackend({ applicationId: uniqueName('rs-test'), target: single })
  t.after(() => backend.close()) // never connected: validation and key layout need no server
  assert.throws(
    () => backend.store('bad name'),
    (error: unknown) => error instanceof RagstreamError && /\/store\/name/.test(error.message),
  )
  assert.equal(backend.partitionKey('orders', 3), `rs:{${backend.applicationId}:orders:3}:state`)
})
