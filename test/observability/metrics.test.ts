import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { METRIC_FAMILIES, Metrics, serveMetrics } from '../../src/observability/metrics.ts'

test('/metrics exposes every family with the values recorded', async (t) => {
  const metrics = new Metrics()
  const server = await serveMetrics(metrics, { port: 0 })
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  metrics.inc('ragstream_records_in_total', { topology: 'support', node: 'tickets' }, 3)
  metrics.inc('ragstream_dead_letter_records_total', { topology: 'support', node: 'tickets', code: 'RS_DECODE_FAILED' })
  metrics.set('ragstream_consumer_lag', { component: 'processor', topic: 'tickets', partition: 0 }, 42)
  metrics.observe('ragstream_freshness_seconds', { table: 'support_v1' }, 0.7)

  const { port } = server.address() as AddressInfo
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  assert.equal(response.status, 200)
  const body = await response.text()
  for (const name of Object.keys(METRIC_FAMILIES)) assert.match(body, new RegExp(`^# TYPE ${name} `, 'm'), name)
  assert.match(body, /^ragstream_records_in_total\{topology="support",node="tickets"\} 3$/m)
  assert.match(body, /^ragstream_dead_letter_records_total\{.*code="RS_DECODE_FAILED"\} 1$/m)
  assert.match(body, /^ragstream_consumer_lag\{component="processor",topic="tickets",partition="0"\} 42$/m)
  assert.match(body, /^ragstream_freshness_seconds_bucket\{le="1",table="support_v1"\} 1$/m)
  assert.match(body, /^ragstream_freshness_seconds_bucket\{le="0.5",table="support_v1"\} 0$/m)
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200)
})

test('two Metrics instances do not share state', async () => {
  const a = new Metrics()
  const b = new Metrics()
  a.inc('ragstream_embedding_calls_total', { model: 'hashing' })
  assert.match(await a.text(), /^ragstream_embedding_calls_total\{model="hashing"\} 1$/m)
  assert.doesNotMatch(await b.text(), /^ragstream_embedding_calls_total\{/m)
})

test('docs/metrics.md documents every family and nothing else', () => {
  const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8')
  const documented = [...doc.matchAll(/^\| `(ragstream_[a-z_]+)` \|/gm)].map((m) => m[1])
  assert.deepEqual(new Set(documented), new Set(Object.keys(METRIC_FAMILIES)))
})
