// Issue 18's bar: a customer changes long after its tickets, on the real stack (exactly-once processor,
// pgvector sink). The re-triggered ticket rows are measured from the customer's change — under a second
// in SQL (the rows and the freshness view's live columns), in the event → visible histogram and in
// `ragstream status` — where the old definition (the ticket's own last change, ten minutes earlier)
// reported ten minutes. Their lineage still names the ticket's own position.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Writable } from 'node:stream'
import { Producer } from '@platformatic/kafka'
import { loadApp } from '../../src/app/load.ts'
import { main } from '../../src/cli/main.ts'
import { checkKafka, checkPostgres, checkRedis } from '../../src/config/services.ts'
import { deployment } from '../../src/ops/deployment.ts'
import { promoteVersion } from '../../src/ops/index-versions.ts'
import { connectPostgres, Pipeline } from '../../src/ops/pipeline.ts'
import type { TopologyStatus } from '../../src/ops/status.ts'
import { createTopics, endpoints } from '../support/stack.ts'
import { opsEnv } from './support.ts'

const TICKETS = 6
const AGE_MS = 10 * 60_000

/** A Debezium JSON change (schemaless), committed at its source at `tsMs`. */
function change(table: string, row: Record<string, unknown>, tsMs: number, op = 'c') {
  return {
    key: Buffer.from(JSON.stringify({ id: row.id })),
    value: Buffer.from(
      JSON.stringify({
        before: null,
        after: row,
        source: { ts_ms: tsMs, lsn: tsMs, schema: 'public', table },
        op,
        ts_ms: tsMs + 3,
      }),
    ),
  }
}

async function status(argv: string[], env: NodeJS.ProcessEnv): Promise<{ json: TopologyStatus; text: string }> {
  const run = async (args: string[]): Promise<string> => {
    let stdout = ''
    let stderr = ''
    const collect = (append: (s: string) => void) =>
      new Writable({
        write(chunk, _e, done) {
          append(String(chunk))
          done()
        },
      })
    const code = await main(args, {
      stdout: collect((s) => (stdout += s)) as unknown as typeof process.stdout,
      stderr: collect((s) => (stderr += s)) as unknown as typeof process.stderr,
      env,
    })
    assert.equal(code, 0, stderr)
    return stdout
  }
  const json = JSON.parse(await run([...argv, '--format', 'json'])) as TopologyStatus
  return { json, text: await run(argv) }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A freshness histogram's count and its `le` bucket for one topology version (default: event → visible). */
function histogram(
  text: string,
  le: string,
  name = 'ragstream_event_to_visible_seconds',
): { count: number; bucket: number } {
  const sample = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0)
  return {
    count: sample(new RegExp(`^${name}_count\\{[^}]*\\} (\\d+)$`, 'm')),
    bucket: sample(new RegExp(`^${name}_bucket\\{le="${le}",[^}]*\\} (\\d+)$`, 'm')),
  }
}

test(
  'a customer changing long after its tickets: the re-triggered rows are fresh in SQL, metrics and status',
  { timeout: 300_000 },
  async (t) => {
    await Promise.all([checkKafka(endpoints), checkRedis(endpoints.redisUrl), checkPostgres(endpoints.postgresUrl)])
    const o = opsEnv(t, { RAGSTREAM_SINK_DIMENSIONS: '64' })
    const prefix = `${o.name}.src`
    const topics = {
      tickets: `${prefix}.public.tickets`,
      customers: `${prefix}.public.customers`,
      products: `${prefix}.products`,
    }
    await createTopics(t, Object.values(topics), 2)
    const producer = new Producer({ clientId: `fresh-${o.suffix}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
    t.after(() => producer.close())

    // Ten minutes ago: a customer and its tickets (appended to their topics only now).
    const long = Date.now() - AGE_MS
    const sentAt = Date.now()
    const customer = (tier: string) => ({
      id: 1,
      name: 'Ada Byron',
      tier,
      status: 'active',
      classification: 'internal',
      region: 'eu',
      tenant: 'acme',
    })
    await producer.send({
      messages: [
        { topic: topics.customers, ...change('customers', customer('gold'), long) },
        ...Array.from({ length: TICKETS }, (_, i) => ({
          topic: topics.tickets,
          ...change(
            'tickets',
            {
              id: i,
              customer_id: 1,
              product_sku: null,
              subject: `Printer ${i} jams`,
              body: `The printer on floor ${i} jams on every second page.`,
              status: 'open',
              priority: 2,
            },
            long + i,
          ),
        })),
      ],
    })

    const d = deployment({
      app: await loadApp('support-copilot'),
      version: 'v1',
      prefix,
      name: o.name,
      sqlTopology: o.sqlTopology,
      cachePrefix: o.cachePrefix,
      config: o.config,
    })
    const pipeline = await Pipeline.start({ deployment: d, instanceId: `fresh-${o.suffix}` })
    t.after(() => pipeline.stop())
    const owner = await connectPostgres(o.config.postgres.ownerUrl, 'retrigger-freshness')
    t.after(() => owner.end())
    await promoteVersion(owner, d.sink)
    // Read as the sink's role: row-level security (forced) shows the owner no rows.
    const reader = await connectPostgres(o.config.postgres.sinkUrl, 'retrigger-freshness')
    t.after(() => reader.end())
    const table = d.sink.names.chunkTable
    const rows = (tier: string) =>
      reader.query<{
        entity_key: string
        source_topic: string
        source_ms: number
        appended_ms: number | null
        visible_ms: number
        lag: number
      }>(
        `SELECT entity_key, source_topic, extract(epoch FROM source_ts) * 1000 AS source_ms,
                extract(epoch FROM source_appended_at) * 1000 AS appended_ms,
                extract(epoch FROM visible_at) * 1000 AS visible_ms, extract(epoch FROM visible_at - source_ts) AS lag
         FROM ${table} WHERE metadata->>'tier' = $1`,
        [tier],
      )
    const backfilled = await until('the tickets indexed', async () => {
      const r = await rows('gold')
      return r.rows.length === TICKETS ? r.rows : undefined
    })
    for (const row of backfilled) {
      assert.ok(row.lag >= AGE_MS / 1000, `a ten-minute-old ticket: ${row.lag} s`)
      // Split at the append: the ten minutes are capture (committed long before it reached its topic).
      assert.ok(row.appended_ms !== null, 'source_appended_at is filled')
      assert.ok(
        Number(row.appended_ms) >= sentAt && Number(row.appended_ms) <= Number(row.visible_ms),
        `appended ${row.appended_ms}: after the send (${sentAt}), before visible (${row.visible_ms})`,
      )
    }
    const before = histogram(await pipeline.metrics.text(), '1')
    const appendBefore = histogram(await pipeline.metrics.text(), '1', 'ragstream_append_to_visible_seconds')

    // Now the customer's tier changes: every ticket's chunk is re-triggered.
    const changedAt = Date.now()
    await producer.send({
      messages: [{ topic: topics.customers, ...change('customers', customer('platinum'), changedAt, 'u') }],
    })
    const retriggered = await until('the re-triggered rows', async () => {
      const r = await rows('platinum')
      return r.rows.length === TICKETS ? r.rows : undefined
    })

    // SQL, per row: measured from the customer's change, the entity's lineage kept.
    for (const row of retriggered) {
      assert.equal(row.source_topic, topics.tickets, 'the row still names its ticket')
      assert.equal(Math.round(row.source_ms), changedAt, 'source_ts is the customer change’s time')
      // source_appended_at: when the customer's change reached its topic (the producer's CreateTime here).
      assert.ok(
        Number(row.appended_ms) >= changedAt && Number(row.appended_ms) <= Number(row.visible_ms),
        `ticket ${row.entity_key}: appended ${row.appended_ms}, changed ${changedAt}, visible ${row.visible_ms}`,
      )
      assert.ok(row.lag < 1, `ticket ${row.entity_key}: ${row.lag} s from the customer's change to visible`)
      // The old definition: visible − the ticket's own last change.
      assert.ok(row.visible_ms - long >= AGE_MS, 'the old definition would report ten minutes')
    }
    // The freshness view's live columns: every row was re-made in the last five minutes.
    // (As the administrator: the view is granted to analysts, and a superuser sees every row.)
    const administrator = await connectPostgres(endpoints.postgresUrl, 'retrigger-freshness')
    t.after(() => administrator.end())
    const view = await administrator.query<{ chunks_5m: string; p99: number }>(
      `SELECT chunks_5m, extract(epoch FROM p99_lag_5m) AS p99 FROM ${d.sink.names.freshnessView}`,
    )
    assert.equal(Number(view.rows[0].chunks_5m), TICKETS)
    assert.ok(Number(view.rows[0].p99) < 1, `freshness view p99 ${view.rows[0].p99} s`)

    // Metrics: every re-triggered row observed under a second (the backfill's ten minutes are not).
    const after = await until('the commit observed', async () => {
      const h = histogram(await pipeline.metrics.text(), '1')
      return h.count - before.count >= TICKETS ? h : undefined
    })
    assert.equal(after.count - before.count, TICKETS)
    assert.equal(after.bucket - before.bucket, TICKETS, 'each re-triggered row: event → visible ≤ 1 s')
    assert.equal(before.bucket, 0, 'the backfilled rows were ten minutes old')
    // Ragstream's part (source topic → visible): the re-triggered rows too, each under a second.
    const appendAfter = histogram(await pipeline.metrics.text(), '1', 'ragstream_append_to_visible_seconds')
    assert.equal(appendAfter.count - appendBefore.count, TICKETS)
    assert.equal(appendAfter.bucket - appendBefore.bucket, TICKETS, 'each re-triggered row: append → visible ≤ 1 s')

    // status: its live window's percentiles.
    const args = ['status', 'support-copilot', '--prefix', prefix, '--name', o.name, '--sql-topology', o.sqlTopology]
    const s = await status(args, o.env)
    const fresh = s.json.versions[0].freshness
    assert.ok(fresh, JSON.stringify(s.json.warnings))
    assert.ok((fresh.p99 ?? Infinity) < 1, `status p99 ${fresh.p99} s`)
    assert.match(s.text, /freshness/)
    // Split: every row of the window carries its append time; ragstream's part under a second.
    assert.equal(fresh.splitRows, fresh.windowRows)
    assert.ok((fresh.ragstream?.p99 ?? Infinity) < 1, `status ragstream p99 ${fresh.ragstream?.p99} s`)
    assert.match(
      s.text,
      /freshness split \(\d+ rows\) {2}capture p50 -?\d+ms {2}p99 -?\d+ms {2}ragstream p50 \d+ms {2}p99 \d+ms/,
    )
  },
)
