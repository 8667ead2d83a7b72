// Error codes are a contract: every code is documented in docs/errors.md with the same recovery,
// and every documented code exists. Recovery of errors of any origin is decided by classifyError.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import {
  ConfigError,
  ERROR_CODES,
  RagstreamError,
  ServiceUnavailableError,
  classifyError,
  isKafkaClientError,
  isRetriable,
  recoveryOf,
  unavailableService,
} from '../src/errors.ts'

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
const documented = new Map([...doc.matchAll(/^\| `(RS_[A-Z_]+)` \| ([a-z-]+) \|/gm)].map((m) => [m[1], m[2]] as const))

test('every error code is documented with its recovery, and every documented code exists', () => {
  for (const [code, { recovery }] of Object.entries(ERROR_CODES)) {
    assert.ok(documented.has(code), `${code} is missing from docs/errors.md`)
    assert.equal(documented.get(code), recovery, `${code}: recovery differs from docs/errors.md`)
  }
  for (const code of documented.keys()) assert.ok(code in ERROR_CODES, `docs/errors.md documents unknown ${code}`)
})

test('retry behaviour is decided by the code, and context travels with the error', () => {
  const error = new RagstreamError('RS_DECODE_FAILED', 'bad envelope', {
    context: { topic: 't', partition: 2, offset: 7n },
  })
  assert.equal(error.retriable, false)
  assert.equal(isRetriable(error), false)
  assert.equal(isRetriable(new RagstreamError('RS_EMBEDDING_FAILED', 'HTTP 503')), true)
  assert.equal(error.recovery, 'dead-letter')
  assert.equal(new RagstreamError('RS_STATE_LOST', 'flushed').recovery, 'restore')
  assert.equal(new RagstreamError('RS_STATE_FENCED', 'newer checkpoint').recovery, 'rejoin')
  assert.deepEqual(error.context, { topic: 't', partition: 2, offset: 7n })
})

test('a ConfigError lists every problem with its path', () => {
  const error = new ConfigError([
    { path: '/topology/nodes/join-customers/foreignKey', message: 'required' },
    { path: '/sink/table', message: 'longer than 63 bytes' },
  ])
  assert.equal(error.code, 'RS_CONFIG_INVALID')
  assert.match(error.message, /\/topology\/nodes\/join-customers\/foreignKey: required/)
  assert.match(error.message, /\/sink\/table: longer than 63 bytes/)
  assert.equal(error.problems.length, 2)
})

/** The shape @platformatic/kafka gives a protocol error: a ProtocolError with `apiId`, wrapped in a MultipleErrors. */
function kafkaError(apiId: string): Error {
  const inner = Object.assign(new Error(`protocol ${apiId}`), { code: 'PLT_KFK_PROTOCOL', apiId })
  return Object.assign(new AggregateError([inner], 'Received response with error'), { code: 'PLT_KFK_RESPONSE' })
}

test('classifyError: one decision for errors of any origin', () => {
  assert.deepEqual(classifyError(kafkaError('INVALID_PRODUCER_EPOCH')), {
    recovery: 'stop',
    code: 'RS_PRODUCER_FENCED',
  })
  assert.deepEqual(classifyError(kafkaError('PRODUCER_FENCED')), { recovery: 'stop', code: 'RS_PRODUCER_FENCED' })
  for (const id of ['ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'REBALANCE_IN_PROGRESS', 'FENCED_INSTANCE_ID'])
    assert.deepEqual(classifyError(kafkaError(id)), { recovery: 'rejoin', code: 'RS_GROUP_REBALANCED' }, id)
  assert.deepEqual(classifyError(kafkaError('MESSAGE_TOO_LARGE')), { recovery: 'stop', code: 'RS_MESSAGE_TOO_LARGE' })
  assert.deepEqual(classifyError(kafkaError('UNKNOWN_TOPIC_OR_PARTITION')), {
    recovery: 'stop',
    code: 'RS_TOPIC_MISSING',
  })
  assert.equal(recoveryOf(kafkaError('OFFSET_OUT_OF_RANGE')), 'rejoin')
  // A retriable protocol error with no special meaning is retried, without a code.
  assert.deepEqual(classifyError(kafkaError('CONCURRENT_TRANSACTIONS')), { recovery: 'retry', code: undefined })

  // A system error anywhere in the cause chain (undici's TypeError('fetch failed') carries it as cause).
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9092'), { code: 'ECONNREFUSED' })
  assert.deepEqual(classifyError(new TypeError('fetch failed', { cause: refused })), {
    recovery: 'retry',
    code: 'RS_SERVICE_UNAVAILABLE',
  })
  const network = Object.assign(new Error('Connection closed'), { code: 'PLT_KFK_NETWORK' })
  assert.equal(classifyError(new AggregateError([network], 'failed')).code, 'RS_SERVICE_UNAVAILABLE')

  // Ragstream's own code wins, wherever it sits in the chain; a fencing wins over a network error beside it.
  const wrapped = new Error('batch failed', { cause: new RagstreamError('RS_STAGE_CONTRACT_VIOLATED', 'stage x') })
  assert.deepEqual(classifyError(wrapped), { recovery: 'stop', code: 'RS_STAGE_CONTRACT_VIOLATED' })
  assert.equal(classifyError(new AggregateError([network, kafkaError('INVALID_PRODUCER_EPOCH')])).recovery, 'stop')

  // Unclassified: retried with backoff, reported without a code; never skipped.
  assert.deepEqual(classifyError(new Error('plain')), { recovery: 'retry', code: undefined })
  assert.deepEqual(classifyError('a string'), { recovery: 'retry', code: undefined })
  // Cycles in the cause chain do not hang.
  const a: Error & { cause?: unknown } = new Error('a')
  a.cause = new Error('b', { cause: a })
  assert.equal(recoveryOf(a), 'retry')
})

test('unavailableService names the service a retried failure waits for, its address masked, with a hint', () => {
  const down = new ServiceUnavailableError('Redis', 'redis://:s3cret@10.0.0.7:6379', new Error('connect ECONNREFUSED'))
  assert.deepEqual(unavailableService(new Error('prefetch failed', { cause: down })), {
    service: 'Redis',
    address: 'redis://:***@10.0.0.7:6379',
    hint: 'retried with backoff, nothing is skipped: check that Redis is up and reachable at redis://:***@10.0.0.7:6379',
  })
  assert.equal(unavailableService(new Error('connect ECONNREFUSED')), undefined)
  assert.equal(unavailableService(new RagstreamError('RS_DECODE_FAILED', 'bad')), undefined)

  const network = Object.assign(new Error('Connection closed'), { code: 'PLT_KFK_NETWORK' })
  assert.ok(isKafkaClientError(new AggregateError([network], 'initProducerId failed 1 times.')))
  assert.ok(!isKafkaClientError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })))
})
