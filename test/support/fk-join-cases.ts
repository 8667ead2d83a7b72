/**
 * The foreign-key join semantics suite (KIP-213), written once against a "runner" so the same cases
 * run on the test driver (test/testing/fk-join.test.ts) and on the real Kafka runtime.
 *
 * Topology under test: orders (left, a compacted table, `{ product, qty }`) keep only qty > 0, then
 * join products (right, `{ name, price }`) by `order.product`; the output is
 * `{ qty, product: name, price }` (left join: product/price null when no product matches).
 *
 * A runner must: create the topics fresh (same partition count for left, right and internal topics),
 * produce with Kafka's default partitioner over the UTF-8 key (`partitionForString`), and make
 * `settle()` return only once every input sent so far and everything it caused (repartition records
 * included) is processed and committed.
 */
import assert from 'node:assert/strict'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import type { Topology } from '../../src/topology/topology.ts'

export interface FkJoinTopics {
  readonly applicationId: string
  /** Left table topic (orders). */
  readonly orders: string
  /** Right table topic (products). */
  readonly products: string
  readonly output: string
}

export interface Order {
  readonly product: string | null
  readonly qty: number
}

export interface Product {
  readonly name: string
  readonly price: number
}

export interface OrderDetail {
  readonly qty: number
  readonly product: string | null
  readonly price: number | null
}

export function fkJoinTopology(type: 'inner' | 'left', topics: FkJoinTopics): Topology {
  const builder = new TopologyBuilder({ applicationId: topics.applicationId })
  const products = builder.table<Product>(topics.products, { name: 'products' })
  const orders = builder
    .table<Order>(topics.orders, { name: 'orders' })
    .filter((order) => order.qty > 0, { name: 'positive-qty' })
  const joined =
    type === 'inner'
      ? orders.join(products, {
          name: 'join-products',
          foreignKey: (order) => order.product,
          joiner: (order, product): OrderDetail => ({ qty: order.qty, product: product.name, price: product.price }),
        })
      : orders.join(products, {
          name: 'join-products',
          type: 'left',
          foreignKey: (order) => order.product,
          joiner: (order, product): OrderDetail => ({
            qty: order.qty,
            product: product?.name ?? null,
            price: product?.price ?? null,
          }),
        })
  joined.to(topics.output, { name: 'order-details' })
  return builder.build()
}

/** One running topology, as the cases drive it. */
export interface FkJoinSession {
  readonly topics: FkJoinTopics
  /** Produces one record (value null = tombstone) to `orders` or `products`. */
  send(topic: string, key: string, value: Order | Product | null): Promise<void>
  /** Returns once everything sent so far, and everything it caused, is processed. */
  settle(): Promise<void>
  /** The output values for `key` in output order (null = tombstone), since the session started. */
  outputsFor(key: string): Promise<(OrderDetail | null)[]>
  /** The output topic read as a table (latest value per key, tombstones applied). */
  outputTable(): Promise<Map<string, OrderDetail>>
  close(): Promise<void>
}

export interface FkJoinRunner {
  /** Starts `fkJoinTopology(type, topics)` on fresh topics; `partitions` for inputs and internal topics. */
  start(type: 'inner' | 'left', partitions: number): Promise<FkJoinSession>
}

export interface FkJoinCase {
  readonly name: string
  run(runner: FkJoinRunner): Promise<void>
}

async function withSession(
  runner: FkJoinRunner,
  type: 'inner' | 'left',
  fn: (s: FkJoinSession) => Promise<void>,
  partitions = 3,
): Promise<void> {
  const session = await runner.start(type, partitions)
  try {
    await fn(session)
  } finally {
    await session.close()
  }
}

const widget: Product = { name: 'widget', price: 5 }
const gadget: Product = { name: 'gadget', price: 7 }

async function last(session: FkJoinSession, key: string): Promise<OrderDetail | null | undefined> {
  const outputs = await session.outputsFor(key)
  return outputs.length === 0 ? undefined : outputs[outputs.length - 1]
}

export const fkJoinCases: readonly FkJoinCase[] = [
  {
    name: 'inner: a left row waits for its right row, then joins',
    run: (runner) =>
      withSession(runner, 'inner', async (s) => {
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        // No join result: the answer is a tombstone (a delete of a key the table does not hold). It is
        // what overrides a stale response to an identical earlier version of the row (subscription-send.ts).
        assert.deepEqual(await s.outputsFor('o1'), [null])
        await s.send(s.topics.products, 'p1', widget)
        await s.settle()
        assert.deepEqual(await s.outputsFor('o1'), [null, { qty: 2, product: 'widget', price: 5 }])
      }),
  },
  {
    name: 'left: a left row joins with null at once, then with its right row when it arrives',
    run: (runner) =>
      withSession(runner, 'left', async (s) => {
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.products, 'p1', widget)
        await s.settle()
        assert.deepEqual(await s.outputsFor('o1'), [
          { qty: 2, product: null, price: null },
          { qty: 2, product: 'widget', price: 5 },
        ])
      }),
  },
  ...(['inner', 'left'] as const).map((type) => ({
    name: `${type}: a right row that exists joins the new left row directly`,
    run: (runner: FkJoinRunner) =>
      withSession(runner, type, async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.settle()
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        assert.deepEqual(await s.outputsFor('o1'), [{ qty: 2, product: 'widget', price: 5 }])
      }),
  })),
  ...(['inner', 'left'] as const).map((type) => ({
    name: `${type}: left changes re-join with the same right row`,
    run: (runner: FkJoinRunner) =>
      withSession(runner, type, async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 3 })
        await s.settle()
        assert.deepEqual(await last(s, 'o1'), { qty: 3, product: 'widget', price: 5 })
      }),
  })),
  ...(['inner', 'left'] as const).map((type) => ({
    name: `${type}: a right change re-triggers the joined output`,
    run: (runner: FkJoinRunner) =>
      withSession(runner, type, async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.products, 'p1', { name: 'widget v2', price: 6 })
        await s.settle()
        assert.deepEqual(await last(s, 'o1'), { qty: 2, product: 'widget v2', price: 6 })
      }),
  })),
  {
    name: 'inner: a right delete tombstones the joined output',
    run: (runner) =>
      withSession(runner, 'inner', async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.products, 'p1', null)
        await s.settle()
        assert.equal(await last(s, 'o1'), null)
        assert.equal((await s.outputTable()).has('o1'), false)
        await s.send(s.topics.products, 'p1', gadget)
        await s.settle()
        assert.deepEqual(
          await last(s, 'o1'),
          { qty: 2, product: 'gadget', price: 7 },
          'the subscription survives a right delete',
        )
      }),
  },
  {
    name: 'left: a right delete re-joins the left row with null',
    run: (runner) =>
      withSession(runner, 'left', async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.products, 'p1', null)
        await s.settle()
        assert.deepEqual(await last(s, 'o1'), { qty: 2, product: null, price: null })
      }),
  },
  ...(['inner', 'left'] as const).map((type) => ({
    name: `${type}: a left delete emits a tombstone and unsubscribes`,
    run: (runner: FkJoinRunner) =>
      withSession(runner, type, async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.orders, 'o1', null)
        await s.settle()
        assert.equal(await last(s, 'o1'), null)
        const before = (await s.outputsFor('o1')).length
        await s.send(s.topics.products, 'p1', gadget)
        await s.settle()
        assert.equal(
          (await s.outputsFor('o1')).length,
          before,
          'a right change after the left delete emits nothing for it',
        )
        assert.equal((await s.outputTable()).has('o1'), false)
      }),
  })),
  ...(['inner', 'left'] as const).map((type) => ({
    name: `${type}: a left row filtered out upstream is a delete for the join`,
    run: (runner: FkJoinRunner) =>
      withSession(runner, type, async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 0 })
        await s.settle()
        assert.equal(await last(s, 'o1'), null)
        const before = (await s.outputsFor('o1')).length
        await s.send(s.topics.products, 'p1', gadget)
        await s.settle()
        assert.equal((await s.outputsFor('o1')).length, before)
      }),
  })),
  ...(['inner', 'left'] as const).map((type) => ({
    name: `${type}: a left key moving from foreign key a to b follows b and forgets a`,
    run: (runner: FkJoinRunner) =>
      withSession(runner, type, async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.products, 'p2', gadget)
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.orders, 'o1', { product: 'p2', qty: 2 })
        await s.settle()
        assert.deepEqual(await last(s, 'o1'), { qty: 2, product: 'gadget', price: 7 })
        const before = (await s.outputsFor('o1')).length
        await s.send(s.topics.products, 'p1', { name: 'widget v2', price: 6 })
        await s.send(s.topics.products, 'p1', null)
        await s.settle()
        assert.equal(
          (await s.outputsFor('o1')).length,
          before,
          'changes to the old foreign key no longer reach the left key',
        )
        await s.send(s.topics.products, 'p2', { name: 'gadget v2', price: 8 })
        await s.settle()
        assert.deepEqual(await last(s, 'o1'), { qty: 2, product: 'gadget v2', price: 8 })
      }),
  })),
  {
    name: 'inner: moving to a foreign key with no right row tombstones the output',
    run: (runner) =>
      withSession(runner, 'inner', async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.orders, 'o1', { product: 'missing', qty: 2 })
        await s.settle()
        assert.equal(await last(s, 'o1'), null)
        await s.send(s.topics.products, 'missing', gadget)
        await s.settle()
        assert.deepEqual(await last(s, 'o1'), { qty: 2, product: 'gadget', price: 7 })
      }),
  },
  {
    name: 'left: moving to a foreign key with no right row joins with null',
    run: (runner) =>
      withSession(runner, 'left', async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.orders, 'o1', { product: 'p1', qty: 2 })
        await s.settle()
        await s.send(s.topics.orders, 'o1', { product: 'missing', qty: 2 })
        await s.settle()
        assert.deepEqual(await last(s, 'o1'), { qty: 2, product: null, price: null })
      }),
  },
  {
    name: 'inner: a null foreign key produces nothing, and unsets a previous join',
    run: (runner) =>
      withSession(runner, 'inner', async (s) => {
        await s.send(s.topics.products, 'p1', widget)
        await s.send(s.topics.orders, 'o1', { product: null, qty: 2 })
        await s.settle()
        assert.deepEqual(await s.outputsFor('o1'), [])
        await s.send(s.topics.orders, 'o2', { product: 'p1', qty: 1 })
        await s.settle()
        await s.send(s.topics.orders, 'o2', { product: null, qty: 1 })
        await s.settle()
        assert.equal(await last(s, 'o2'), null)
      }),
  },
  {
    name: 'left: a null foreign key joins with null',
    run: (runner) =>
      withSession(runner, 'left', async (s) => {
        await s.send(s.topics.orders, 'o1', { product: null, qty: 2 })
        await s.settle()
        assert.deepEqual(await s.outputsFor('o1'), [{ qty: 2, product: null, price: null }])
      }),
  },
  ...(['inner', 'left'] as const).map((type) => ({
    name: `${type}: a right change fans out to every subscribed left key, on every partition`,
    run: (runner: FkJoinRunner) =>
      withSession(
        runner,
        type,
        async (s) => {
          const keys = Array.from({ length: 24 }, (_, i) => `order-${i}`)
          await s.send(s.topics.products, 'p1', widget)
          await s.send(s.topics.products, 'p2', gadget)
          for (const [i, key] of keys.entries())
            await s.send(s.topics.orders, key, { product: i % 4 === 3 ? 'p2' : 'p1', qty: i + 1 })
          await s.settle()
          await s.send(s.topics.products, 'p1', { name: 'widget v2', price: 6 })
          await s.settle()
          let table = await s.outputTable()
          for (const [i, key] of keys.entries()) {
            const expected =
              i % 4 === 3 ? { qty: i + 1, product: 'gadget', price: 7 } : { qty: i + 1, product: 'widget v2', price: 6 }
            assert.deepEqual(table.get(key), expected, key)
          }
          await s.send(s.topics.products, 'p1', null)
          await s.settle()
          table = await s.outputTable()
          for (const [i, key] of keys.entries()) {
            if (i % 4 === 3) assert.deepEqual(table.get(key), { qty: i + 1, product: 'gadget', price: 7 }, key)
            else if (type === 'inner') assert.equal(table.has(key), false, key)
            else assert.deepEqual(table.get(key), { qty: i + 1, product: null, price: null }, key)
          }
        },
        4,
      ),
  })),
]
