// The support-copilot source rows bench/freshness.ts and bench/topology-cpu.ts change (not a benchmark
// itself: bench/run.ts skips files starting with `_`): one shape, so the two measure the same work.

/** A customers row; its tier is what a re-trigger changes. */
export const customerRow = (id: number, tier: string) => ({
  id,
  name: `Customer ${id}`,
  tier,
  status: 'active',
  classification: 'internal',
  region: 'eu',
  tenant: 'acme',
})

/** A tickets row of customer `id % customers`; its body changes with `version` (a direct update). */
export const ticketRow = (id: number, version: number, customers: number) => ({
  id,
  customer_id: id % customers,
  product_sku: null,
  subject: `Ticket ${id}`,
  body: `The export of report ${id} stops after version ${version}; the customer needs it by Friday.`,
  status: 'open',
  priority: 2,
})
