// A replay whose processor fails for good reports that failure, not what the next lag reading on the
// closed clients says: the pipeline stops both parts when one fails, and a caller polling it used to see
// "Client is closed." from the admin client the stop had closed (a CI run printed only that).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Writable } from 'node:stream'
import { loadApp } from '../../src/app/load.ts'
import { checkKafka, checkPostgres, checkRedis } from '../../src/config/services.ts'
import type { OpenAIEmbeddingConfig } from '../../src/embedding/openai.ts'
import { RagstreamError } from '../../src/errors.ts'
import { generate } from '../../src/generator/generator.ts'
import { replay } from '../../src/ops/replay.ts'
import { startFakeOpenAI } from '../embedding/fake-openai.ts'
import { endpoints } from '../support/stack.ts'
import { opsEnv } from './support.ts'

const PROBE = 'ragstream embedding check'

test('a replay whose processor fails for good rejects with that failure, not with a closed client', async (t) => {
  await Promise.all([checkKafka(endpoints), checkRedis(endpoints.redisUrl), checkPostgres(endpoints.postgresUrl)])
  const o = opsEnv(t, { RAGSTREAM_SINK_DIMENSIONS: '16' })
  // The provider answers the start-up probe, then refuses the key for content: a configuration problem
  // (RS_EMBEDDING_REJECTED) that no retry fixes, so the processor stops with it.
  const fake = await startFakeOpenAI(t, {
    dimensions: 16,
    intercept: (request, _n, res) => {
      if (request.input.includes(PROBE)) return false
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } }))
      return true
    },
  })
  const embedding: OpenAIEmbeddingConfig = {
    kind: 'openai',
    model: 'fake-embed',
    dimensions: 16,
    baseUrl: fake.baseUrl,
  }
  const prefix = `${o.name}.src`
  await generate({
    brokers: endpoints.kafkaBrokers,
    seed: 3,
    server: prefix,
    withSchema: false,
    backfill: 10,
    rate: 0,
    malformedRate: 0,
    createTopics: { partitions: 1 },
  })
  let printed = ''
  const out = new Writable({
    write(chunk, _e, done) {
      printed += String(chunk)
      done()
    },
  })
  const failed = await replay({
    app: await loadApp('support-copilot'),
    prefix,
    name: o.name,
    sqlTopology: o.sqlTopology,
    cachePrefix: o.cachePrefix,
    embedding,
    config: o.config,
    out,
    toVersion: 'v1',
    timeoutMs: 60_000,
  }).then(
    () => undefined,
    (error: unknown) => error,
  )
  assert.ok(failed instanceof RagstreamError, `${String(failed)}\n${printed}`)
  assert.equal(failed.code, 'RS_EMBEDDING_REJECTED', `${failed.message}\n${printed}`)
  assert.doesNotMatch(failed.message, /Client is closed/)
})
