import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import type { ProcessorTopology, SourceRecord } from '../../src/runtime/task.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'
import { PrefetchPlan, groupPrefix, groupedKey, prefetchAll } from '../../src/state/store.ts'
import { DEAD_LETTER_HEADERS } from '../../src/topology/compile.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'
import { fkJoinTopology } from '../support/fk-join-cases.ts'

const topics = { applicationId: 'shop', orders: 'orders', products: 'products', output: 'order-details' }

function record(topic: string, key: string, value: unknown, partition: number, offset = 0n): SourceRecord {
  return {
    topic,
    partition,
    offset,
    timestamp: 0n,
    key: Buffer.from(key),
    value: value === null ? null : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
    headers: new Map(),
  }
}

function storesFor(names: readonly string[]): Map<string, MemoryStateStore> {
  return new Map(names.map((name) => [name, new MemoryStateStore(name)]))
}

async function prefetch(
  processor: ProcessorTopology,
  stores: Map<string, MemoryStateStore>,
  records: SourceRecord[],
): Promise<void> {
  await prefetchAll(processor.prefetchKeys(records), stores, (name) => new Error(`no store ${name}`))
}

test('the compiled topology lists its topics with the settings internal ones are created with', () => {
  const processor = fkJoinTopology('inner', topics).compile({ partitions: 6 })
  assert.equal(processor.applicationId, 'shop')
  assert.deepEqual(processor.sourceTopics.toSorted(), [
    'orders',
    'products',
    'shop-join-products-response-repartition',
    'shop-join-products-right-repartition',
    'shop-join-products-subscription-repartition',
  ])
  assert.deepEqual(processor.storeNames, ['products', 'orders', 'join-products-subscriptions', 'join-products-right'])
  assert.deepEqual(
    processor.topics.map((t) => [t.role, t.name, t.partitions, t.config, t.store]),
    [
      ['source', 'products', undefined, {}, undefined],
      ['source', 'orders', undefined, {}, undefined],
      ['changelog', 'shop-products-changelog', 6, { 'cleanup.policy': 'compact' }, 'products'],
      ['changelog', 'shop-orders-changelog', 6, { 'cleanup.policy': 'compact' }, 'orders'],
      [
        'changelog',
        'shop-join-products-subscriptions-changelog',
        6,
        { 'cleanup.policy': 'compact' },
        'join-products-subscriptions',
      ],
      ['changelog', 'shop-join-products-right-changelog', 6, { 'cleanup.policy': 'compact' }, 'join-products-right'],
      [
        'repartition',
        'shop-join-products-subscription-repartition',
        6,
        { 'cleanup.policy': 'delete', 'retention.ms': '-1' },
        undefined,
      ],
      [
        'repartition',
        'shop-join-products-response-repartition',
        6,
        { 'cleanup.policy': 'delete', 'retention.ms': '-1' },
        undefined,
      ],
      [
        'repartition',
        'shop-join-products-right-repartition',
        6,
        { 'cleanup.policy': 'delete', 'retention.ms': '-1' },
        undefined,
      ],
      ['sink', 'order-details', undefined, {}, undefined],
      [
        'dead-letter',
        'shop-dead-letter',
        6,
        { 'cleanup.policy': 'delete', 'retention.ms': '604800000', 'segment.ms': '86400000' },
        undefined,
      ],
    ],
  )
})

test('prefetchKeys names every key the batch reads, per store and partition; undecodable records read nothing', () => {
  const processor = fkJoinTopology('inner', topics).compile({ partitions: 4 })
  const keys = processor.prefetchKeys([
    record('orders', 'o1', { product: 'p1', qty: 1 }, 1),
    record('orders', 'o2', '{broken', 1),
    record('products', 'p1', { name: 'w', price: 1 }, 2),
    record('shop-join-products-subscription-repartition', 'p9', { i: 1, k: 'o7', p: 3, h: 'x' }, 0),
    record('shop-join-products-response-repartition', 'o8', { h: 'x', v: null }, 3),
    record('shop-join-products-right-repartition', 'p5', { name: 'w', price: 1 }, 1),
  ])
  const plainOf = (map: Map<string, Map<number, Set<string>>>): unknown =>
    Object.fromEntries(
      [...map].map(([store, partitions]) => [
        store,
        Object.fromEntries([...partitions].map(([p, set]) => [p, [...set]])),
      ]),
    )
  assert.deepEqual(plainOf(keys), {
    orders: { 1: ['o1'], 3: ['o8'] },
    products: { 2: ['p1'], 0: ['p9'] },
    // The right key (a list-layout value to migrate) and, for a subscription, its own entry.
    'join-products-subscriptions': { 2: ['p1'], 0: ['p9', groupedKey('p9', 'o7')], 1: ['p5'] },
    'join-products-right': { 0: ['p9'] },
  })
  // A right change (and a re-homed right row) scans every subscription of its key.
  assert.ok(keys instanceof PrefetchPlan)
  assert.deepEqual(plainOf(keys.prefixes), {
    'join-products-subscriptions': { 2: [groupPrefix('p1')], 1: [groupPrefix('p5')] },
  })
})

test('a store read the batch did not prefetch is a transient failure (process rejects), never a dead letter', async () => {
  const topology = fkJoinTopology('inner', topics)
  const processor = topology.compile({ partitions: 4 })
  const stores = storesFor(processor.storeNames)
  await assert.rejects(processor.process([record('orders', 'o1', { product: 'p1', qty: 1 }, 0)], stores, 0), {
    code: 'RS_STATE_NOT_PREFETCHED',
  })
})

test('compile refuses a partition count that is not a positive integer', () => {
  assert.throws(() => fkJoinTopology('inner', topics).compile({ partitions: 0 }), { code: 'RS_CONFIG_INVALID' })
})

test("a per-record failure reverts the record's table write and drops its partial outputs", async () => {
  const builder = new TopologyBuilder({ applicationId: 'app' })
  const rows = builder.table<{ n: number }>('in', { name: 'rows' })
  rows.to('copy')
  rows
    .mapValues((row) => {
      if (row.n < 0) throw new Error('negative')
      return row
    })
    .to('checked')
  const processor = builder.build().compile({ partitions: 1 })
  const stores = storesFor(processor.storeNames)
  const batch = [
    record('in', 'k', { n: 1 }, 0, 0n),
    record('in', 'k', { n: -1 }, 0, 1n),
    record('in', 'j', { n: -2 }, 0, 2n),
  ]
  await prefetch(processor, stores, batch)
  const out = await processor.process(batch, stores, 0)
  assert.deepEqual(
    out.map((r) => [r.topic, r.key?.toString(), r.value?.toString() ?? null]),
    [
      ['copy', 'k', '{"n":1}'],
      ['checked', 'k', '{"n":1}'],
      ['app-dead-letter', 'k', '{"n":-1}'],
      ['app-dead-letter', 'j', '{"n":-2}'],
    ],
  )
  assert.equal(out[2].headers!.get(DEAD_LETTER_HEADERS.node)!.toString(), 'KTABLE-MAPVALUES-0000000002')
  assert.equal(out[2].headers!.get(DEAD_LETTER_HEADERS.code)!.toString(), 'RS_RECORD_INVALID')
  assert.equal(out[2].headers!.get(DEAD_LETTER_HEADERS.offset)!.toString(), '1')
  const store = stores.get('rows')!
  assert.deepEqual(store.get(0, 'k'), Buffer.from('{"n":1}'), 'the failed update is reverted')
  assert.equal(store.get(0, 'j'), undefined, 'the failed insert is reverted')
})

test('concurrent process() calls (tasks awaiting a stage) do not share per-record state', async () => {
  const builder = new TopologyBuilder({ applicationId: 'app' })
  const release: (() => void)[] = []
  builder
    .table<{ n: number }>('in', { name: 'rows' })
    .stage<{ n: number }>({
      kind: 'slow',
      processor: {
        async process(items) {
          await new Promise<void>((resolve) => release.push(resolve))
          return items.map((item) => [{ key: item.key, value: { n: (item.value as { n: number }).n * 10 } }])
        },
      },
    })
    .to('out')
  const processor = builder.build().compile({ partitions: 2 })
  const stores = storesFor(processor.storeNames)
  const a = [record('in', 'a', { n: 1 }, 0)]
  const b = [record('in', 'b', { n: 2 }, 1)]
  await prefetch(processor, stores, [...a, ...b])
  const first = processor.process(a, stores, 0)
  const second = processor.process(b, stores, 0)
  while (release.length < 2) await new Promise((resolve) => setImmediate(resolve))
  release.forEach((fn) => fn())
  const [outA, outB] = await Promise.all([first, second])
  assert.deepEqual(
    outA.map((r) => [r.key?.toString(), r.value?.toString(), r.partition]),
    [['a', '{"n":10}', partitionForString('a', 2)]],
  )
  assert.deepEqual(
    outB.map((r) => [r.key?.toString(), r.value?.toString(), r.partition]),
    [['b', '{"n":20}', partitionForString('b', 2)]],
  )
})
