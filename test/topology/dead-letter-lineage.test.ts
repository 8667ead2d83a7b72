// Dead letters of later stages name the source change that led there (issue 13): a join's response,
// an aggregate's group-by change and a stage's item are internal records, but their dead letters'
// `ragstream.source.*` name the source topic, partition, offset and key, and `ragstream.input.*` the
// internal record that failed. Outputs carry the same origin (the runtime's too-large dead letters).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { decodeOrigin, encodeOrigin, ORIGIN_HEADER } from '../../src/runtime/origin.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'

const H = DEAD_LETTER_HEADERS

/** left ⋈ right on left.fk, whose joiner throws for a right row with ok = false. */
function throwingJoin(app: string) {
  const builder = new TopologyBuilder({ applicationId: app })
  const right = builder.table<{ ok: boolean }>('right', { name: 'right' })
  builder
    .table<{ fk: string }>('left', { name: 'left' })
    .join(right, {
      name: 'j',
      foreignKey: (l) => l.fk,
      joiner: (l, r) => {
        if (!r.ok) throw new Error('not ok')
        return { ...l, ...r }
      },
    })
    .to('out')
  return builder.build()
}

test('a right change that makes a joiner throw names the right record, also when it was re-homed first', async () => {
  const partitions = 3
  const home = partitionForString('c', partitions)
  const elsewhere = (home + 1) % partitions
  for (const partition of [home, elsewhere]) {
    const driver = new TopologyTestDriver(throwingJoin('lineage-j'), { partitions })
    await driver.pipe('left', 'x', { fk: 'c' })
    await driver.pipe('right', 'c', { ok: true })
    await driver.pipe('right', 'c', { ok: false }, { partition })
    const dead = driver.readDeadLetters()
    assert.equal(dead.length, 1, `right row on partition ${partition}`)
    const h = dead[0].headers
    assert.deepEqual(
      [h[H.node], h[H.topic], h[H.partition], h[H.offset], h[H.sourceKey]],
      ['j', 'right', String(partition), String(partition === home ? 1 : 0), 'c'],
    )
    assert.equal(h[H.inputTopic], 'lineage-j-j-response-repartition')
    assert.equal(dead[0].key, 'x', "the failed record's own key: the left row it answered")
    await driver.close()
  }
})

test('a join output caused by a right change carries that change as its source', async () => {
  const driver = new TopologyTestDriver(throwingJoin('lineage-out'), { partitions: 2 })
  await driver.pipe('left', 'x', { fk: 'c' })
  await driver.pipe('right', 'c', { ok: true })
  // First the inner join's answer to the new left row (no right row yet: a tombstone), then the join.
  const outputs = driver.readOutput('out')
  assert.deepEqual(
    outputs.map((o) => o.value === null),
    [true, false],
  )
  const joined = outputs[1]
  assert.equal(joined.key, 'x')
  assert.deepEqual(joined.source, {
    topic: 'right',
    partition: partitionForString('c', 2),
    offset: 0n,
    key: 'c',
  })
  await driver.close()
})

test("an aggregate's adder that throws names the child change, not the group-by record", async () => {
  const builder = new TopologyBuilder({ applicationId: 'lineage-agg' })
  builder
    .table<{ product: string; stars: number }>('reviews', { name: 'reviews' })
    .groupBy(
      (r) => r.product,
      (r) => r.stars,
    )
    .aggregate<number>(
      () => 0,
      (sum, stars) => {
        if (stars === 13) throw new Error('unlucky')
        return sum + stars
      },
      (sum, stars) => sum - stars,
      { name: 'sum' },
    )
    .to('sums')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 2 })
  await driver.pipe('reviews', 'r1', { product: 'p1', stars: 2 }, { partition: 1 })
  await driver.pipe('reviews', 'r2', { product: 'p1', stars: 13 }, { partition: 1 })
  const [dead, ...more] = driver.readDeadLetters()
  assert.equal(more.length, 0)
  const h = dead.headers
  assert.deepEqual(
    [h[H.node], h[H.topic], h[H.partition], h[H.offset], h[H.sourceKey], h[H.inputTopic]],
    ['sum', 'reviews', '1', '1', 'r2', 'lineage-agg-sum-groupby-repartition'],
  )
  assert.equal(h[H.inputPartition], String(partitionForString('p1', 2)))
  await driver.close()
})

test("a stage's failed item after a join names the source change that re-triggered it", async () => {
  const builder = new TopologyBuilder({ applicationId: 'lineage-stage' })
  const customers = builder.table<{ tier: string }>('customers', { name: 'customers' })
  builder
    .table<{ customer: string; text: string }>('tickets', { name: 'tickets' })
    .join(customers, {
      name: 'jc',
      type: 'left',
      foreignKey: (t) => t.customer,
      joiner: (t, c) => ({ ...t, tier: c?.tier }),
    })
    .stage<{ text: string }>({
      name: 'chunk',
      kind: 'chunk',
      processor: {
        async process(items) {
          return items.map((item) =>
            (item.value as { tier?: string } | null)?.tier === 'broken'
              ? { error: new Error('cannot chunk') }
              : [{ key: `${item.key}#0`, value: { text: 'ok' }, partitionKey: item.key }],
          )
        },
      },
    })
    .to('chunks')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 2 })
  await driver.pipe('customers', 'c1', { tier: 'gold' })
  await driver.pipe('tickets', 't1', { customer: 'c1', text: 'hello' })
  assert.equal(driver.readOutput('chunks').length, 1)
  await driver.pipe('customers', 'c1', { tier: 'broken' })
  const [dead, ...more] = driver.readDeadLetters()
  assert.equal(more.length, 0)
  const h = dead.headers
  assert.deepEqual(
    [h[H.node], h[H.topic], h[H.offset], h[H.sourceKey], h[H.inputTopic]],
    ['chunk', 'customers', '1', 'c1', 'lineage-stage-jc-response-repartition'],
  )
  assert.equal(h[H.message], 'cannot chunk')
  await driver.close()
})

test('a source record with a forged origin header is its own origin', async () => {
  const builder = new TopologyBuilder({ applicationId: 'lineage-forged' })
  builder
    .table<{ n: number }>('in', { name: 'in' })
    .mapValues((v) => {
      if (v.n < 0) throw new Error('negative')
      return v
    })
    .to('out')
  const driver = new TopologyTestDriver(builder.build(), { partitions: 1 })
  const forged = encodeOrigin({ topic: 'elsewhere', partition: 7, offset: 99n, timestamp: 1n, key: Buffer.from('k') })
  await driver.pipe('in', 'a', { n: -1 }, { headers: { [ORIGIN_HEADER]: forged.toString('latin1') } })
  const [dead] = driver.readDeadLetters()
  assert.deepEqual([dead.headers[H.topic], dead.headers[H.offset]], ['in', '0'])
  assert.equal(dead.headers[H.inputTopic], undefined)
  await driver.close()
})

test('the origin codec round-trips, drops keys over 1024 bytes and refuses malformed bytes', () => {
  const origin = { topic: 'dbserver1.public.tickets', partition: 5, offset: 2n ** 40n, timestamp: 1_700_000_000_000n }
  for (const key of [Buffer.from('ticket-42'), Buffer.alloc(0), null])
    assert.deepEqual(decodeOrigin(encodeOrigin({ ...origin, key })), { ...origin, key })
  assert.deepEqual(decodeOrigin(encodeOrigin({ ...origin, key: Buffer.alloc(100_000, 1) })), { ...origin, key: null })
  const bytes = encodeOrigin({ ...origin, key: Buffer.from('k') })
  for (const broken of [bytes.subarray(0, bytes.length - 1), Buffer.concat([bytes, Buffer.from([0])]), Buffer.alloc(1)])
    assert.equal(decodeOrigin(broken), undefined)
})
