// The runtime's options are validated once, with one default per option, and every problem listed with its path.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError } from '../../src/errors.ts'
import { resolveRuntimeConfig, type KafkaRuntimeOptions } from '../../src/runtime/config.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { countingTopology } from '../support/counting-topology.ts'

const topology = countingTopology({ applicationId: 'cfg-app', input: 'cfg-in', output: 'cfg-out' })
const stores = new Map([['counts', new MemoryStateStore('counts')]])

test('runtime config: one default per option, derived ones from the options they depend on', () => {
  const c = resolveRuntimeConfig(topology, { brokers: ['127.0.0.1:9092'], stores })
  assert.equal(c.batchMaxRecords, 1_000)
  assert.equal(c.batchMaxBytes, 4 * 1024 * 1024)
  assert.equal(c.fetchMaxWaitMs, 500)
  assert.equal(c.sessionTimeoutMs, 10_000)
  assert.equal(c.heartbeatIntervalMs, 1_000)
  assert.equal(c.rebalanceTimeoutMs, 10_000)
  assert.equal(c.transactionTimeoutMs, 30_000)
  assert.equal(c.autoOffsetReset, 'earliest')
  assert.equal(c.replicationFactor, -1)
  assert.equal(c.maxRecordBytes, 1_000_000)
  assert.equal(c.staticMember, false, 'a random instance id never becomes a static member')
  assert.match(c.transactionalId, /^cfg-app-[0-9a-f-]{36}$/)

  const given = resolveRuntimeConfig(topology, {
    brokers: ['127.0.0.1:9092'],
    stores,
    instanceId: 'pod-0',
    sessionTimeoutMs: 30_000,
  })
  assert.equal(given.transactionalId, 'cfg-app-pod-0')
  assert.equal(given.staticMember, true)
  assert.equal(given.heartbeatIntervalMs, 3_000)
  assert.equal(given.rebalanceTimeoutMs, 30_000)
})

test('runtime config: every problem is listed with its path, in one RS_CONFIG_INVALID', () => {
  const bad = {
    brokers: ['localhost'],
    stores: new Map(),
    instanceId: 'has space',
    batchMaxRecords: 0,
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 6_000,
    autoOffsetReset: 'newest',
    replicationFactor: 0,
    maxRecordBytes: 1.5,
    onEvent: 'log',
  } as unknown as KafkaRuntimeOptions
  assert.throws(
    () => resolveRuntimeConfig(topology, bad),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError)
      assert.equal(error.code, 'RS_CONFIG_INVALID')
      assert.deepEqual(
        error.problems.map((p) => p.path),
        [
          '/runtime/brokers/0',
          '/runtime/stores/counts',
          '/runtime/instanceId',
          '/runtime/batchMaxRecords',
          '/runtime/heartbeatIntervalMs',
          '/runtime/autoOffsetReset',
          '/runtime/replicationFactor',
          '/runtime/maxRecordBytes',
          '/runtime/onEvent',
        ],
      )
      return true
    },
  )
  assert.throws(
    () => resolveRuntimeConfig(topology, { stores } as unknown as KafkaRuntimeOptions),
    /\/runtime\/brokers: required/,
  )
})
