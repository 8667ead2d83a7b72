import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopologyBuilder, type StageItem } from '../../src/dsl/index.ts'
import { RagstreamError, recoveryOf } from '../../src/errors.ts'
import type { StageProcessor } from '../../src/topology/graph.ts'
import { DEAD_LETTER_HEADERS, TopologyTestDriver } from '../../src/testing/index.ts'
import { partitionForString } from '../../src/topology/partitioner.ts'

interface Doc {
  readonly text: string
}

test("a stage gets each batch's changes in one async call and may re-key rows, partitioned by the entity", async () => {
  const calls: StageItem[][] = []
  const b = new TopologyBuilder({ applicationId: 'rag' })
  b.table<Doc>('docs', { name: 'docs' })
    .stage<{ entity: string; text: string }>({
      name: 'chunk',
      kind: 'chunk',
      processor: {
        async process(items) {
          calls.push([...items])
          await new Promise((resolve) => setImmediate(resolve))
          return items.map((item) =>
            item.value === null
              ? [{ key: `${item.key}#0`, value: null, partitionKey: item.key }]
              : (item.value as Doc).text.split(' ').map((word, i) => ({
                  key: `${item.key}#${i}`,
                  value: { entity: item.key, text: word },
                  partitionKey: item.key,
                })),
          )
        },
      },
    })
    .to('chunks')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1, sinkPartitions: { chunks: 5 } })
  await driver.pipeBatch([
    { topic: 'docs', key: 'd1', value: { text: 'hello world' } },
    { topic: 'docs', key: 'd2', value: { text: 'bye' } },
  ])
  await driver.pipe('docs', 'd2', null)
  assert.deepEqual(
    calls.map((items) => items.map((i) => [i.key, i.value, i.oldValue, i.partition])),
    [
      [
        ['d1', { text: 'hello world' }, null, 0],
        ['d2', { text: 'bye' }, null, 0],
      ],
      [['d2', null, { text: 'bye' }, 0]],
    ],
  )
  const out = driver.readOutput('chunks')
  assert.deepEqual(
    out.map((r) => [r.key, r.value]),
    [
      ['d1#0', { entity: 'd1', text: 'hello' }],
      ['d1#1', { entity: 'd1', text: 'world' }],
      ['d2#0', { entity: 'd2', text: 'bye' }],
      ['d2#0', null],
    ],
  )
  for (const record of out)
    assert.equal(
      record.partition,
      partitionForString(record.key!.split('#')[0], 5),
      'partitioned by entity, not chunk id',
    )
})

test("a per-item failure dead-letters that item's source record; a throw fails the batch", async () => {
  const b = new TopologyBuilder({ applicationId: 'rag' })
  b.table<Doc>('docs', { name: 'docs' })
    .stage({
      name: 'govern',
      kind: 'govern',
      processor: {
        process(items) {
          if (items.some((i) => (i.value as Doc | null)?.text === 'outage')) throw new Error('service down')
          return items.map((i) =>
            (i.value as Doc).text === 'pii' ? { error: new Error('unredactable') } : [{ key: i.key, value: i.value }],
          )
        },
      },
    })
    .to('governed')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipeBatch([
    { topic: 'docs', key: 'a', value: { text: 'pii' } },
    { topic: 'docs', key: 'b', value: { text: 'ok' } },
  ])
  const [dead] = driver.readDeadLetters()
  assert.deepEqual(
    [dead.key, dead.headers[DEAD_LETTER_HEADERS.node], dead.headers[DEAD_LETTER_HEADERS.message]],
    ['a', 'govern', 'unredactable'],
  )
  assert.deepEqual([...driver.readTable('governed').keys()], ['b'])
  await assert.rejects(driver.pipe('docs', 'c', { text: 'outage' }), /service down/)
})

test('a stage reads and writes only the stores it declared, prefetching them itself', async () => {
  const b = new TopologyBuilder({ applicationId: 'rag' })
  b.table<Doc>('docs', { name: 'docs' })
    .stage({
      name: 'versions',
      kind: 'count',
      stores: ['doc-versions'],
      processor: {
        async process(items, context) {
          const store = context.store('doc-versions')
          for (const item of items) await store.prefetch(item.partition, [item.key])
          return items.map((item) => {
            const version = Number(store.get(item.partition, item.key)?.toString() ?? '0') + 1
            store.put(item.partition, item.key, Buffer.from(String(version)))
            return [{ key: item.key, value: { version } }]
          })
        },
      },
    })
    .to('versions')
  const driver = new TopologyTestDriver(b.build(), { partitions: 2 })
  await driver.pipe('docs', 'a', { text: '1' })
  await driver.pipe('docs', 'a', { text: '2' })
  assert.deepEqual(driver.readTable('versions').get('a'), { version: 2 })
  assert.deepEqual(driver.readStore('doc-versions').get('a'), 2)
  assert.equal(driver.allOutput('rag-doc-versions-changelog').length, 2)
})

test('a stage that breaks its contract fails the batch with RS_STAGE_CONTRACT_VIOLATED naming the stage, never a dead letter or a retry', async () => {
  const broken = (name: string, process: StageProcessor['process']): TopologyTestDriver => {
    const b = new TopologyBuilder({ applicationId: 'rag' })
    b.table<Doc>('docs', { name: 'docs' }).stage({ name, kind: 'enrich', processor: { process } }).to('out')
    return new TopologyTestDriver(b.build(), { partitions: 1 })
  }
  const violation = (stage: string, what: RegExp) => (error: unknown) => {
    assert.ok(error instanceof RagstreamError, String(error))
    assert.equal(error.code, 'RS_STAGE_CONTRACT_VIOLATED')
    assert.equal(recoveryOf(error), 'stop')
    assert.equal(error.context.node, stage)
    assert.match(error.message, new RegExp(`stage '${stage}'`))
    assert.match(error.message, what)
    return true
  }
  const none = broken('drops-items', () => [])
  await assert.rejects(none.pipe('docs', 'a', { text: '1' }), violation('drops-items', /returned 0 results for 1 item/))
  assert.deepEqual(none.readOutput('out'), [])
  assert.deepEqual(none.readDeadLetters(), [])

  // Reading an undeclared store stops the batch even when the stage catches the throw.
  const sneaky = broken('reads-docs', (items, context) => {
    try {
      context.store('docs')
    } catch {
      // swallowed: the driver still refuses the batch
    }
    return items.map((i) => [{ key: i.key, value: i.value }])
  })
  await assert.rejects(
    sneaky.pipe('docs', 'a', { text: '1' }),
    violation('reads-docs', /read store 'docs', which it did not declare/),
  )
  assert.deepEqual(sneaky.readOutput('out'), [])

  const shapeless = broken('returns-undefined', (items) => items.map(() => undefined as unknown as []))
  await assert.rejects(shapeless.pipe('docs', 'a', { text: '1' }), violation('returns-undefined', /item 0/))
})

test('a stage row without a string key dead-letters its item', async () => {
  const b = new TopologyBuilder({ applicationId: 'rag' })
  b.table<Doc>('docs', { name: 'docs' })
    .stage({
      name: 'sloppy',
      kind: 'chunk',
      processor: {
        process: (items) => items.map((i) => [{ key: (i.key === 'bad' ? 7 : i.key) as string, value: i.value }]),
      },
    })
    .to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipeBatch([
    { topic: 'docs', key: 'bad', value: { text: 'x' } },
    { topic: 'docs', key: 'good', value: { text: 'y' } },
  ])
  const [dead] = driver.readDeadLetters()
  assert.deepEqual([dead.key, dead.headers[DEAD_LETTER_HEADERS.node]], ['bad', 'sloppy'])
  assert.deepEqual([...driver.readTable('out').keys()], ['good'])
})

test("a stage's look-ahead prefetch gets the previous stage's items before that stage runs; its failure is ignored", async () => {
  const seen: string[] = []
  let fail = false
  const b = new TopologyBuilder({ applicationId: 'rag' })
  b.table<Doc>('docs', { name: 'docs' })
    .stage({
      name: 'first',
      kind: 'govern',
      processor: {
        async process(items) {
          seen.push(`first ${items.map((i) => i.key).join(',')}`)
          await new Promise((resolve) => setImmediate(resolve))
          seen.push('first done')
          return items.map((i) => [{ key: i.key, value: i.value }])
        },
      },
    })
    .stage({
      name: 'second',
      kind: 'chunk',
      stores: ['second-state'],
      processor: {
        async prefetchAhead(items, context) {
          seen.push(`ahead ${items.map((i) => `${i.key}@${i.partition}`).join(',')}`)
          const store = context.store('second-state')
          if (fail) throw new Error('Redis down')
          for (const item of items) await store.prefetch(item.partition, [item.key])
        },
        async process(items, context) {
          const store = context.store('second-state')
          // Its own prefetch stays (a no-op for what was loaded ahead): the look-ahead may have failed.
          for (const item of items) await store.prefetch(item.partition, [item.key])
          return items.map((item) => {
            const n = Number(store.get(item.partition, item.key)?.toString() ?? '0') + 1
            store.put(item.partition, item.key, Buffer.from(String(n)))
            return [{ key: item.key, value: { n } }]
          })
        },
      },
    })
    .to('out')
  const driver = new TopologyTestDriver(b.build(), { partitions: 1 })
  await driver.pipeBatch([
    { topic: 'docs', key: 'a', value: { text: '1' } },
    { topic: 'docs', key: 'b', value: { text: '1' } },
  ])
  assert.deepEqual(seen, ['ahead a@0,b@0', 'first a,b', 'first done'])
  assert.deepEqual(driver.readTable('out').get('a'), { n: 1 })
  fail = true
  await driver.pipe('docs', 'a', { text: '2' })
  assert.deepEqual(driver.readTable('out').get('a'), { n: 2 }, 'read from what was committed all the same')
})
