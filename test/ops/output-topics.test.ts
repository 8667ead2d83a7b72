// `ragstream run` creates or verifies every topic it writes before it starts, and fails fast, naming the
// topic, when the broker refuses to create one (here: a name that collides with an existing topic).
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { RagstreamError } from '../../src/errors.ts'
import { TopologyBuilder } from '../../src/index.ts'
import { Metrics, serveMetrics } from '../../src/observability/metrics.ts'
import { ensureWrittenTopics } from '../../src/ops/output-topics.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

function passthrough(input: string, output: string) {
  const builder = new TopologyBuilder({ applicationId: uniqueName('ot-app') })
  builder.table(input, { name: 'input' }).to(output)
  return builder.build()
}

test('missing output and deletions topics are created with the sources’ partition count, compacted when asked; present ones verified', async (t) => {
  const input = uniqueName('ot-in')
  const output = uniqueName('ot-chunks')
  const deletions = uniqueName('ot-deletions')
  await createTopics(t, [input], 3)
  const admin = new Admin({ clientId: uniqueName('ot-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(async () => {
    await admin.deleteTopics({ topics: [output, deletions] }).catch(() => {})
    await admin.close()
  })
  const topology = passthrough(input, output)
  const first = await ensureWrittenTopics(topology, endpoints.kafkaBrokers, {
    compact: [output, deletions],
    extra: [deletions],
  })
  assert.deepEqual(
    first.map((w) => [w.name, w.created, w.compact]),
    [
      [output, true, true],
      [deletions, true, true],
    ],
  )
  // Listed as soon as it returns: the processor started next looks its deletions topic up this way.
  const listed = new Set(await admin.listTopics())
  assert.ok(listed.has(output) && listed.has(deletions), 'created topics are listed when it returns')
  const metadata = await admin.metadata({ topics: [output, deletions] })
  assert.equal(metadata.topics.get(output)?.partitionsCount, 3)
  assert.equal(metadata.topics.get(deletions)?.partitionsCount, 3)
  const [described] = await admin.describeConfigs({
    resources: [{ resourceType: 2, resourceName: output, configurationKeys: ['cleanup.policy'] }],
  })
  assert.equal(described.configs.find((c) => c.name === 'cleanup.policy')?.value, 'compact')
  const again = await ensureWrittenTopics(topology, endpoints.kafkaBrokers, { compact: [output], extra: [deletions] })
  assert.deepEqual(
    again.map((w) => w.created),
    [false, false],
  )
})

test('a topic the broker refuses to create fails at once with RS_TOPIC_MISSING naming it, with a hint', async (t) => {
  const input = uniqueName('ot-in')
  const id = uniqueName('ot').replace(/-/g, '')
  await createTopics(t, [input, `ot_${id}_chunks`], 2)
  await assert.rejects(
    ensureWrittenTopics(passthrough(input, `ot.${id}.chunks`), endpoints.kafkaBrokers),
    (error: unknown) => {
      assert.ok(error instanceof RagstreamError)
      assert.equal(error.code, 'RS_TOPIC_MISSING')
      assert.match(error.message, new RegExp(`topic ot\\.${id}\\.chunks does not exist and could not be created`))
      assert.match(error.hint ?? '', /create it before starting \(2 partitions\).*--partitions 2/)
      return true
    },
  )
})

test('metrics on a busy port: RS_CONFIG_INVALID naming the option, with a hint; port 0 picks a free one', async (t) => {
  const busy = createServer()
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
  t.after(() => busy.close())
  const port = (busy.address() as { port: number }).port
  await assert.rejects(serveMetrics(new Metrics(), { port, path: '--metrics-port' }), (error: unknown) => {
    assert.ok(error instanceof RagstreamError)
    assert.equal(error.code, 'RS_CONFIG_INVALID')
    assert.match(error.message, new RegExp(`cannot serve metrics on 127\\.0\\.0\\.1:${port}: the port is in use`))
    assert.equal(error.context.path, '--metrics-port')
    assert.match(error.hint ?? '', /or 0 for any free one/)
    return true
  })
  const any = await serveMetrics(new Metrics(), { port: 0 })
  t.after(() => any.close())
  const bound = (any.address() as { port: number }).port
  assert.ok(bound > 0)
  assert.equal((await fetch(`http://127.0.0.1:${bound}/healthz`)).status, 200)
})
