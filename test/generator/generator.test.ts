// Against the real broker: the generator creates its topics and every record it reports lands.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Admin } from '@platformatic/kafka'
import { generate, generatorTopics } from '../../src/generator/generator.ts'
import { checkKafka } from '../../src/config/services.ts'
import { endpoints, uniqueName } from '../support/stack.ts'

test('generate: backfill then a bounded trickle, all records on compacted topics', async (t) => {
  await checkKafka(endpoints)
  const server = uniqueName('gen')
  const topics = generatorTopics(server)
  const admin = new Admin({ clientId: uniqueName('gen-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  t.after(async () => {
    await admin.deleteTopics({ topics }).catch(() => {})
    await admin.close()
  })
  const phases: string[] = []
  const result = await generate({
    brokers: endpoints.kafkaBrokers,
    seed: 5,
    server,
    withSchema: false,
    backfill: 60,
    rate: 500,
    changes: 100,
    createTopics: { partitions: 2 },
    onProgress: (p) => phases.push(p.phase),
  })
  assert.equal(result.changes, 100)
  assert.ok(phases.includes('backfill') && phases.at(-1) === 'done')

  const offsets = await admin.listOffsets({
    topics: topics.map((name) => ({
      name,
      partitions: [
        { partitionIndex: 0, timestamp: -1n },
        { partitionIndex: 1, timestamp: -1n },
      ],
    })),
  })
  const total = offsets.flatMap((topic) => topic.partitions).reduce((sum, p) => sum + Number(p.offset), 0)
  assert.equal(total, result.records, 'every generated record is on the broker')

  const configs = await admin.describeConfigs({
    resources: topics.map((name) => ({ resourceType: 2, resourceName: name, configurationKeys: ['cleanup.policy'] })),
  })
  for (const resource of configs) {
    assert.equal(resource.configs.find((c) => c.name === 'cleanup.policy')?.value, 'compact')
  }
})
