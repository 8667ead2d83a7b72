// One place derives every name of a topology version; status, replay and promote rely on it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadConfig } from '../../src/config/file.ts'
import { loadApp } from '../../src/app/load.ts'
import { deployment, sourceTopics } from '../../src/ops/deployment.ts'

const config = loadConfig({ env: {} })
const supportCopilot = await loadApp('support-copilot')
const knowledgeBase = await loadApp('knowledge-base')

test("v1 keeps the default exports' names; vN gets its own application id, chunk topic, table and sink group", () => {
  const v1 = deployment({ app: supportCopilot, version: 'v1', config })
  assert.equal(v1.applicationId, 'support-copilot')
  assert.equal(v1.chunkTopic, 'rag.chunks.support-copilot')
  assert.equal(v1.prefix, 'support')
  assert.equal(v1.sink.names.chunkTable, '"ragstream"."chunks_support-copilot_v1"')
  assert.equal(v1.sink.names.view, '"rag"."support-copilot"')
  assert.deepEqual(sourceTopics(v1).sort(), [
    'governance.deletions',
    'support.products',
    'support.public.customers',
    'support.public.tickets',
  ])
  assert.equal(
    v1.deletionsTopic,
    'governance.deletions',
    'the default prefix reads the topic `ragstream forget` writes to by default',
  )

  const v2 = deployment({
    app: supportCopilot,
    version: 'v2',
    prefix: 'acme',
    name: 'sc',
    sqlTopology: 'sc_sql',
    config,
  })
  assert.equal(v2.applicationId, 'sc-v2')
  assert.equal(v2.chunkTopic, 'rag.chunks.sc.v2')
  assert.equal(v2.sink.names.chunkTable, '"ragstream"."chunks_sc_sql_v2"')
  assert.equal(v2.sink.groupId, 'ragstream-sink.sc_sql.v2')
  assert.equal(v2.sink.topic, 'rag.chunks.sc.v2')
  assert.deepEqual(v2.embedding, { kind: 'hashing', dimensions: 384 })
  assert.equal(v2.deletionsTopic, 'acme.governance.deletions', 'co-partitioned with its own sources')

  const kb = deployment({
    app: knowledgeBase,
    version: 'v1',
    config: loadConfig({ env: { RAGSTREAM_KB_PREFIX: 'help' } }),
  })
  assert.equal(kb.prefix, 'help')
  assert.equal(kb.deletionsTopic, undefined)
})

test('unknown apps and malformed versions are refused, naming the argument', async () => {
  await assert.rejects(
    loadApp('fraud'),
    /<app>: "fraud" is neither a file nor a known app \(support-copilot, knowledge-base\)/,
  )
  assert.throws(
    () => deployment({ app: supportCopilot, version: 'V2"', config }),
    /version: expected a version like v2/,
  )
})
