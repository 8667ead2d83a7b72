// The review aggregates of the runtime's aggregate differential test (test/runtime/aggregate.test.ts),
// shared with the child-process runner (runtime-runner.ts, topology: 'aggregate'): per product, a
// count, a sum of stars (aggregate with adder and subtractor) and the top reviews (collect).
import { TopologyBuilder } from '../../src/dsl/index.ts'

export const COLLECT_LIMIT = 5

export interface Review {
  readonly product: string | null
  readonly stars: number
}

export function reviewAggregates(applicationId: string, reviewsTopic: string) {
  const builder = new TopologyBuilder({ applicationId })
  const reviews = builder.table<Review>(reviewsTopic, { name: 'reviews' })
  reviews
    .groupBy((r) => r.product)
    .count({ name: 'review-count' })
    .to(`${applicationId}-counts`)
  reviews
    .groupBy(
      (r) => r.product,
      (r) => r.stars,
    )
    .aggregate(
      () => ({ sum: 0, n: 0 }),
      (a: { sum: number; n: number }, stars) => ({ sum: a.sum + stars, n: a.n + 1 }),
      (a, stars) => ({ sum: a.sum - stars, n: a.n - 1 }),
      { name: 'stars' },
    )
    .to(`${applicationId}-stars`)
  reviews
    .groupBy(
      (r) => r.product,
      (r) => r.stars,
    )
    .collect({ name: 'top', orderBy: (stars) => stars, descending: true, limit: COLLECT_LIMIT })
    .to(`${applicationId}-top`)
  return builder.build()
}
