// The demo drops what its own earlier runs left, by exact name: never the topics, groups, Redis keys
// or SQL tables of a demo with a longer name that starts the same (`<name>-rx`), nor of another demo
// sharing its SQL topology.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Admin } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { loadApp } from '../../src/app/load.ts'
import { dropOldDemoRuns } from '../../src/ops/demo.ts'
import { deployment } from '../../src/ops/deployment.ts'
import { connectPostgres, prepareDatabase } from '../../src/ops/pipeline.ts'
import { promoteVersion } from '../../src/ops/index-versions.ts'
import { createTopics, endpoints } from '../support/stack.ts'
import { opsEnv } from './support.ts'

test('demo cleanup: an earlier run of the same name goes, a run of `<name>-rx` and of another name on the same SQL topology stay', async (t) => {
  const o = opsEnv(t)
  const app = await loadApp('support-copilot')
  const base = o.name
  const other = `${o.name}-rx`
  const at = (name: string, version: string) =>
    deployment({ app, version, name, prefix: `${name}.${version}`, sqlTopology: o.sqlTopology, config: o.config })
  const [old, kept, theirs] = [at(base, 'raaaaaaaa'), at(base, 'rcccccccc'), at(other, 'rbbbbbbbb')]
  const topicsOf = (d: ReturnType<typeof at>) => [
    `${d.prefix}.public.tickets`,
    `${d.applicationId}-join-customers-repartition`,
    d.chunkTopic,
  ]
  await createTopics(t, [...topicsOf(old), ...topicsOf(kept), ...topicsOf(theirs)], 1)
  const redis = new Redis(endpoints.redisUrl)
  t.after(() => void redis.disconnect())
  for (const d of [old, kept, theirs]) await redis.set(`rs:{${d.applicationId}:tickets}:k`, '1')
  for (const d of [old, theirs, kept]) await prepareDatabase(d)
  const owner = await connectPostgres(o.config.postgres.ownerUrl, 'test')
  t.after(() => owner.end())
  await promoteVersion(owner, kept.sink) // as the demo does before cleaning up

  await dropOldDemoRuns(o.config, base, kept, owner)

  const admin = new Admin({ clientId: `test-${o.suffix}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
  const topics = new Set(await admin.listTopics())
  await admin.close()
  for (const name of topicsOf(old)) assert.ok(!topics.has(name), `${name} dropped`)
  for (const name of [...topicsOf(kept), ...topicsOf(theirs)]) assert.ok(topics.has(name), `${name} kept`)
  assert.equal(await redis.exists(`rs:{${old.applicationId}:tickets}:k`), 0)
  assert.equal(await redis.exists(`rs:{${kept.applicationId}:tickets}:k`), 1)
  assert.equal(await redis.exists(`rs:{${theirs.applicationId}:tickets}:k`), 1)
  const versions = await owner.query<{ version: string }>(
    `SELECT version FROM ${kept.sink.names.versionsTable} WHERE topology = $1 ORDER BY 1`,
    [o.sqlTopology],
  )
  assert.deepEqual(
    versions.rows.map((r) => r.version),
    ['rbbbbbbbb', 'rcccccccc'],
    "the other demo's table on the same SQL topology stays",
  )
})
