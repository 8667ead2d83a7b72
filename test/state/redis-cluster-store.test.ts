// The Redis state store on the local 3-node Redis Cluster (scripts/stack.sh): the same conformance
// suite, unchanged, because every operation of a store partition hits one hash-tagged slot.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Cluster } from 'ioredis'
import { checkRedis } from '../../src/config/services.ts'
import { ServiceUnavailableError } from '../../src/errors.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { endpoints, uniqueName } from '../support/stack.ts'
import { stateStoreConformance } from './conformance.ts'
import { freePort } from '../support/local.ts'
import { redisStoreHarness, startPrivateCluster } from './redis-harness.ts'

const cluster = { kind: 'cluster', nodes: endpoints.redisClusterNodes } as const

async function checkCluster(): Promise<void> {
  for (const { host, port } of endpoints.redisClusterNodes) await checkRedis(`redis://${host}:${port}`)
}

stateStoreConformance('redis cluster store', async (t) => {
  await checkCluster()
  return redisStoreHarness(t, cluster)
})

test('redis cluster store: partitions of one store spread over the cluster nodes', async (t) => {
  await checkCluster()
  const h = await redisStoreHarness(t, cluster)
  const store = h.open('orders')
  for (let p = 0; p < 24; p++) store.put(p, 'k', Buffer.from(`v${p}`))
  await store.flush(new Map(Array.from({ length: 24 }, (_, p) => [p, BigInt(p + 1)] as const)))
  const nodes = new Set<string>()
  const client = h.backend.client
  assert.ok(client instanceof Cluster)
  for (const node of client.nodes('master')) {
    let cursor = '0'
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `rs:{${h.backend.applicationId}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) nodes.add(`${node.options.host}:${node.options.port}`)
    } while (cursor !== '0')
  }
  assert.ok(nodes.size >= 2, `24 partitions landed on ${nodes.size} node(s)`)
  const fresh = h.open('orders')
  for (let p = 0; p < 24; p++) {
    await fresh.prefetch(p, ['k'])
    assert.deepEqual(fresh.get(p, 'k'), Buffer.from(`v${p}`))
    assert.equal(await fresh.checkpoint(p), BigInt(p + 1))
  }
})

test('redis cluster store: an unreachable cluster is a retriable RS_SERVICE_UNAVAILABLE naming its nodes', async (t) => {
  const nodes = [
    { host: '127.0.0.1', port: await freePort() },
    { host: '127.0.0.1', port: await freePort() },
  ]
  const backend = new RedisStateBackend({
    applicationId: uniqueName('rs-test'),
    target: { kind: 'cluster', nodes },
    operationTimeoutMs: 2000,
  })
  t.after(() => backend.close())
  await assert.rejects(backend.store('orders').checkpoint(0), (error: unknown) => {
    assert.ok(error instanceof ServiceUnavailableError, String(error))
    assert.ok(error.retriable)
    assert.match(
      error.message,
      new RegExp(
        `^Redis Cluster is not reachable at 127\\.0\\.0\\.1:${nodes[0].port},127\\.0\\.0\\.1:${nodes[1].port}`,
      ),
    )
    return true
  })
})

test('redis cluster store: a store partition keeps working while its slot migrates to another node (ASK, then MOVED)', async (t) => {
  const cluster = await startPrivateCluster(t)
  const backend = new RedisStateBackend({
    applicationId: uniqueName('rs-test'),
    target: { kind: 'cluster', nodes: cluster.nodes },
  })
  t.after(() => backend.close())
  const store = backend.store('orders')
  const v = (s: string): Buffer => Buffer.from(s)
  for (let i = 0; i < 100; i++) store.put(0, `k${i}`, v(`v${i}`))
  await store.flush(new Map([[0, 1n]]))

  const key = backend.partitionKey('orders', 0)
  const slot = Number(await cluster.admins[0].call('CLUSTER', 'KEYSLOT', key))
  const source = await cluster.owner(slot)
  const targetIndex = (source.index + 1) % 3
  const targetId = await cluster.nodeId(targetIndex)
  const [src, dst] = [cluster.admins[source.index], cluster.admins[targetIndex]]

  // Mid-migration: the partition's hash already moved, the source answers ASK.
  await dst.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', source.id)
  await src.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId)
  await src.call('MIGRATE', '127.0.0.1', String(cluster.nodes[targetIndex].port), '', '0', '5000', 'KEYS', key)
  await store.prefetch(0, ['k1', 'k99'])
  assert.deepEqual(store.get(0, 'k1'), v('v1'))
  store.put(0, 'k1', v('v1b'))
  await store.flush(new Map([[0, 2n]]))
  const asked = await dst.pipeline().call('ASKING').hget(key, 'checkpoint').exec()
  assert.equal(asked?.[1][1], '2', 'the flush reached the node the hash moved to')

  // Migration done: the target owns the slot and the client's slot map is stale (MOVED).
  for (const admin of [dst, src, cluster.admins[(source.index + 2) % 3]])
    await admin.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId)
  const fresh = backend.store('orders')
  assert.equal(await fresh.checkpoint(0), 2n)
  await fresh.prefetch(0, ['k1', 'k2'])
  assert.deepEqual(fresh.get(0, 'k1'), v('v1b'))
  assert.deepEqual(fresh.get(0, 'k2'), v('v2'))
  fresh.put(0, 'k2', v('v2b'))
  await fresh.flush(new Map([[0, 3n]]))
  assert.deepEqual(await dst.hgetBuffer(key, 'v:k2'), v('v2b'))
  assert.equal(await src.call('CLUSTER', 'COUNTKEYSINSLOT', slot), 0, 'nothing was written back to the old owner')
})
