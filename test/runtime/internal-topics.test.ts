// ensureTopics against the real broker: source topics must exist (one created a moment before the
// processor starts is waited for), internal topics are created with their settings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Admin } from '@platformatic/kafka'
import { RagstreamError } from '../../src/errors.ts'
import { TopologyBuilder } from '../../src/dsl/index.ts'
import { compileForBroker } from '../../src/runtime/compile-for-broker.ts'
import { ensureTopics } from '../../src/runtime/internal-topics.ts'
import { countingTopology } from '../support/counting-topology.ts'
import { deleteAfter } from '../support/runtime-waits.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

test('ensureTopics: a source topic created while it starts is waited for; its changelog is created compacted', async (t) => {
  const applicationId = uniqueName('it-app')
  const input = uniqueName('it-in')
  const output = uniqueName('it-out')
  const topology = countingTopology({ applicationId, input, output })
  const changelog = `${applicationId}-counts-changelog`
  await deleteAfter(t, [changelog])
  const ensured = ensureTopics(endpoints.kafkaBrokers, topology, 1)
  await new Promise((r) => setTimeout(r, 700))
  await createTopics(t, [input, output], 3)
  const resolved = await ensured
  assert.equal(resolved.partitions, 3)
  assert.equal(resolved.changelogs.get('counts'), changelog)

  const admin = new Admin({ clientId: uniqueName('it-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(() => admin.close())
  const [described] = await admin.describeConfigs({
    resources: [{ resourceType: 2, resourceName: changelog, configurationKeys: ['cleanup.policy'] }],
  })
  assert.equal(described.configs.find((c) => c.name === 'cleanup.policy')?.value, 'compact')
  assert.equal((await admin.metadata({ topics: [changelog] })).topics.get(changelog)?.partitionsCount, 3)
})

test('ensureTopics: a source topic that never appears fails with RS_TOPOLOGY_INVALID naming it, with a hint', async () => {
  const input = uniqueName('it-missing')
  const topology = countingTopology({ applicationId: uniqueName('it-app'), input, output: uniqueName('it-out') })
  await assert.rejects(ensureTopics(endpoints.kafkaBrokers, topology, 1), (error: unknown) => {
    assert.ok(error instanceof RagstreamError)
    assert.equal(error.code, 'RS_TOPOLOGY_INVALID')
    assert.match(error.message, new RegExp(`/topology/sourceTopics/${input}: topic does not exist on the broker`))
    assert.match(error.hint ?? '', /create the source topics/)
    return true
  })
})

test('ensureTopics: a missing output topic fails the start at once with RS_TOPIC_MISSING naming it, with a hint', async (t) => {
  const input = uniqueName('it-in')
  const output = uniqueName('it-out-missing')
  await createTopics(t, [input], 2)
  const topology = countingTopology({ applicationId: uniqueName('it-app'), input, output })
  const started = Date.now()
  await assert.rejects(ensureTopics(endpoints.kafkaBrokers, topology, 1), (error: unknown) => {
    assert.ok(error instanceof RagstreamError)
    assert.equal(error.code, 'RS_TOPIC_MISSING')
    assert.equal(error.recovery, 'stop')
    assert.match(error.message, new RegExp(`/topology/topics/${output}: output topic does not exist on the broker`))
    assert.match(error.hint ?? '', /create the output topics/)
    return true
  })
  assert.ok(Date.now() - started < 15_000, 'no endless retry')
})

test('compileForBroker (ragstream run, demo, replay): as many tasks as the sources have partitions; a source created meanwhile is waited for', async (t) => {
  const input = uniqueName('cfb-in')
  const output = uniqueName('cfb-out')
  const builder = new TopologyBuilder({ applicationId: uniqueName('cfb-app') })
  builder.table(input, { name: 'input' }).to(output)
  await createTopics(t, [output], 1)
  const compiling = compileForBroker(builder.build(), endpoints.kafkaBrokers, 'test-admin')
  await new Promise((r) => setTimeout(r, 700))
  await createTopics(t, [input], 3)
  const compiled = await compiling
  // One task per source partition: the store's changelog is created with that many partitions.
  assert.equal(compiled.topics.find((x) => x.role === 'changelog')?.partitions, 3)

  const missing = new TopologyBuilder({ applicationId: uniqueName('cfb-app') })
  missing.table(uniqueName('cfb-missing'), { name: 'input' }).to(output)
  await assert.rejects(
    compileForBroker(missing.build(), endpoints.kafkaBrokers, 'test-admin'),
    /RS_TOPOLOGY_INVALID|topic does not exist on the broker/,
  )
})
