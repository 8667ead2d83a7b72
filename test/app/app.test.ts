// An app declares its names once; every version's names derive from them in one place (src/app/naming.ts).
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { defineApp, isApp, TopologyBuilder, versionNames, type AppDeployment } from '../../src/index.ts'
import { loadApp, loadAppOrTopology, resolveAppRef } from '../../src/app/load.ts'
import { loadConfig } from '../../src/config/file.ts'
import type { TailServices } from '../../src/config/rag-services.ts'

const services = {} as TailServices // build() here touches no service

const reviews = defineApp({
  name: 'reviews',
  sqlName: 'reviews_sql',
  sourcePrefix: { default: 'shop', env: 'SHOP_PREFIX' },
  deletionsTopic: (prefix) => `${prefix}.governance.deletions`,
  build(d: AppDeployment) {
    const builder = new TopologyBuilder({ applicationId: d.applicationId })
    builder.table(d.source('public.reviews'), { name: 'reviews' }).to(d.chunkTopic)
    return builder.build()
  },
})

test('v1 and vN names: application id, internal topics, Redis keys, chunk topic, tables, view, sink group', () => {
  assert.ok(isApp(reviews))
  assert.deepEqual(reviews.names(), {
    name: 'reviews',
    sqlName: 'reviews_sql',
    version: 'v1',
    applicationId: 'reviews',
    internalTopicPrefix: 'reviews-',
    redisKeyPrefix: 'rs:{reviews:',
    chunkTopic: 'rag.chunks.reviews',
    chunkTable: 'chunks_reviews_sql_v1',
    tombstoneTable: 'tombstones_reviews_sql_v1',
    view: 'reviews_sql',
    sinkGroup: 'ragstream-sink.reviews_sql.v1',
    embeddingCachePrefix: 'rs:emb',
  })
  const v2 = reviews.names('v2')
  assert.equal(v2.applicationId, 'reviews-v2')
  assert.equal(v2.redisKeyPrefix, 'rs:{reviews-v2:')
  assert.equal(v2.chunkTopic, 'rag.chunks.reviews.v2')
  assert.equal(v2.chunkTable, 'chunks_reviews_sql_v2')
  assert.equal(v2.view, 'reviews_sql', 'one view per app, whatever the version')
  assert.equal(v2.sinkGroup, 'ragstream-sink.reviews_sql.v2')
  assert.equal(versionNames({ name: 'x', chunkTopic: 'my.chunks', version: 'v3' }).chunkTopic, 'my.chunks.v3')
})

test('deploy passes the version, its names, the prefix and the services to build', () => {
  const { deployment, topology } = reviews.deploy({ version: 'v2', env: { SHOP_PREFIX: 'acme' }, services })
  assert.equal(deployment.prefix, 'acme')
  assert.equal(deployment.deletionsTopic, 'acme.governance.deletions')
  assert.equal(deployment.services, services)
  assert.equal(topology.applicationId, 'reviews-v2')
  const compiled = topology.compile({ partitions: 1 })
  assert.ok(compiled.sourceTopics.includes('acme.public.reviews'))
  assert.equal(reviews.deploy({ services, env: {} }).deployment.prefix, 'shop', 'the default without the variable')
  assert.equal(reviews.deploy({ services, prefix: 'p', env: { SHOP_PREFIX: 'acme' } }).deployment.prefix, 'p')
})

test('bad names fail at defineApp naming the field; build must use the deployment application id', () => {
  const build = (d: AppDeployment) => new TopologyBuilder({ applicationId: d.applicationId }).build()
  assert.throws(() => defineApp({ name: 'Reviews!', build }), /app\.name: "Reviews!" must match/)
  assert.throws(() => defineApp({ name: 'r', sqlName: 'a"b', build }), /app\.sqlName/)
  assert.throws(() => defineApp({ name: 'r' } as never), /app\.build: required/)
  assert.throws(() => reviews.names('V2'), /version: expected a version like v2 .*, got "V2"/)
  const fixed = defineApp({
    name: 'fixed',
    build: () => {
      const builder = new TopologyBuilder({ applicationId: 'fixed' })
      builder.table('in', { name: 'in' }).to('out')
      return builder.build()
    },
  })
  assert.throws(() => fixed.deploy({ version: 'v2', services }), /use deployment\.applicationId \("fixed-v2"\)/)
})

test('commands find an app by file, by a name of /apps in the config file, or by reference name', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-app-'))
  const src = new URL('../../src/index.ts', import.meta.url).pathname
  writeFileSync(
    join(dir, 'mine.ts'),
    `import { defineApp, TopologyBuilder } from ${JSON.stringify(src)}
export default defineApp({ name: 'mine', build: (d) => { const b = new TopologyBuilder({ applicationId: d.applicationId }); b.table('in', { name: 'in' }).to(d.chunkTopic); return b.build() } })\n`,
  )
  writeFileSync(join(dir, 'bare.ts'), `export default 42\n`)
  writeFileSync(join(dir, 'ragstream.json'), JSON.stringify({ apps: { mine: 'mine.ts' } }))
  const config = loadConfig({ file: join(dir, 'ragstream.json'), env: {} })
  assert.equal(config.apps.mine, join(dir, 'mine.ts'), 'resolved against the config file')
  assert.equal((await loadApp('mine', config.apps)).name, 'mine')
  assert.equal((await loadApp(join(dir, 'mine.ts'))).name, 'mine')
  assert.equal((await loadApp('support-copilot')).name, 'support-copilot')
  assert.ok(resolveAppRef('knowledge-base').file.endsWith('knowledge-base.ts'))
  await assert.rejects(loadAppOrTopology(join(dir, 'bare.ts')), /must default-export an app/)
  await assert.rejects(loadAppOrTopology(join(dir, 'missing.ts')), /no such file/)
  await assert.rejects(loadApp('nope', config.apps), /"nope" is neither a file nor a known app \(mine, support-copilot/)
})
