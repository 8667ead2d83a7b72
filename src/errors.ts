/**
 * Every error ragstream raises on purpose carries a stable `code`, a `recovery` decided here (callers
 * never switch on codes to decide what to do) and typed context naming where it happened.
 * `recoveryOf` extends the same decision to any error (client errors, system errors, bugs), so the
 * runtime's failure path consults one function. `docs/errors.md` documents each code with its
 * recovery; `test/errors.test.ts` keeps the two in step.
 */
import { maskCredentials } from './security/secrets.ts'

/** Where an error happened: any subset, never secrets. */
export interface ErrorContext {
  /** Config or topology path, e.g. `/topology/nodes/join-customers/foreignKey`. */
  readonly path?: string
  readonly field?: string
  readonly topic?: string
  readonly partition?: number
  readonly offset?: bigint | string
  readonly node?: string
  readonly service?: string
  readonly address?: string
  readonly [key: string]: unknown
}

/**
 * What the component that meets an error does about it:
 * - `retry`: transient; abort the batch (nothing committed), back off, retry from the committed offsets.
 * - `rejoin`: the group moved (a rebalance, another owner); abort and take the new assignment, no backoff.
 * - `restore`: a state store lost data; abort, re-assign and restore the store from its changelog.
 * - `dead-letter`: the record's own fault; it goes to the dead-letter topic with context, the partition moves on.
 * - `stop`: retrying cannot help (configuration, fencing, a broken stage); the instance stops with the error.
 */
export type Recovery = 'retry' | 'rejoin' | 'restore' | 'dead-letter' | 'stop'

const RETRIED: ReadonlySet<Recovery> = new Set(['retry', 'rejoin', 'restore'])

/** The catalogue of codes: each code's retry behaviour is decided once, here. */
export const ERROR_CODES = {
  RS_CONFIG_INVALID: { recovery: 'stop', summary: 'Configuration is invalid; the message names the field.' },
  RS_TOPOLOGY_INVALID: {
    recovery: 'stop',
    summary: 'A topology failed validation at build time; every problem is listed with its path.',
  },
  RS_SERVICE_UNAVAILABLE: {
    recovery: 'retry',
    summary: 'A required service (Kafka, schema registry, Redis, PostgreSQL, embedding service) did not answer.',
  },
  RS_DECODE_FAILED: {
    recovery: 'dead-letter',
    summary: 'A record could not be decoded; it goes to the dead-letter topic with its source position.',
  },
  RS_RECORD_INVALID: {
    recovery: 'dead-letter',
    summary: 'A decoded record broke a rule of the topology; it goes to the dead-letter topic.',
  },
  RS_AUDIT_UNAUTHENTICATED: {
    recovery: 'dead-letter',
    summary:
      'A DELETION_APPLIED audit event on the chunk topic is not signed with the audit key; the sink records it in sink_rejects and deletes nothing.',
  },
  RS_SCHEMA_INCOMPATIBLE: { recovery: 'stop', summary: 'A schema change failed the registry compatibility check.' },
  RS_PRODUCER_FENCED: {
    recovery: 'stop',
    summary: 'Another instance took over this transactional id; this instance stops.',
  },
  RS_TRANSACTION_UNCERTAIN: {
    recovery: 'retry',
    summary: 'A Kafka transaction outcome is unknown; the batch is aborted and re-processed from committed offsets.',
  },
  RS_SINK_FENCED: {
    recovery: 'rejoin',
    summary: 'The sink offsets fence moved: another sink instance owns the partition now.',
  },
  RS_EMBEDDING_FAILED: { recovery: 'retry', summary: 'The embedding service failed; retried with backoff.' },
  RS_EMBEDDING_REJECTED: {
    recovery: 'stop',
    summary:
      'The embedding service refused the request (4xx other than 429): API key, model name or input size; not retried.',
  },
  RS_EMBEDDING_DIMENSIONS: { recovery: 'stop', summary: 'The embedding service returned vectors of the wrong size.' },
  RS_EMBEDDING_MODEL_MISSING: {
    recovery: 'stop',
    summary:
      'A local embedding model is not installed in the models folder, or its files differ from the pinned sha256.',
  },
  RS_IDENTIFIER_INVALID: {
    recovery: 'stop',
    summary: 'A SQL identifier from configuration failed the allow-list or is longer than 63 bytes.',
  },
  RS_STATE_NOT_PREFETCHED: {
    recovery: 'stop',
    summary:
      'A topology read a state-store key that its prefetchKeys did not declare for the batch (a bug in the operator).',
  },
  RS_STATE_FENCED: {
    recovery: 'rejoin',
    summary:
      'A state-store write was refused: Redis holds a newer changelog checkpoint, so another instance owns the partition now.',
  },
  RS_FORGET_UNCONFIRMED: {
    recovery: 'retry',
    summary:
      'A deletion request was not confirmed by every processor partition and the sink within the --wait timeout.',
  },
  RS_STATE_LOST: {
    recovery: 'restore',
    summary:
      'Redis no longer holds the checkpoint this instance last wrote or restored for a store partition; the partition must be restored from its changelog.',
  },
  RS_STAGE_CONTRACT_VIOLATED: {
    recovery: 'stop',
    summary:
      'A user stage broke its contract (wrong number of results, an undeclared store); the instance stops naming the stage, never a retry loop.',
  },
  RS_GROUP_REBALANCED: {
    recovery: 'rejoin',
    summary: 'The consumer group rebalanced while a batch was open; the batch is aborted and the new assignment taken.',
  },
  RS_RECORD_TOO_LARGE: {
    recovery: 'dead-letter',
    summary:
      "An output record or state value is larger than its topic takes (maxRecordBytes, or the topic's lower max.message.bytes; checked before producing); the source record is dead-lettered with an excerpt and the partition moves on.",
  },
  RS_MESSAGE_TOO_LARGE: {
    recovery: 'stop',
    summary:
      'A record that cannot be dead-lettered (no dead-letter topic, or one the broker refused despite the check) is larger than its topic accepts; the message names topic, key and size.',
  },
  RS_TOPIC_MISSING: {
    recovery: 'stop',
    summary: 'A topic the topology reads or writes does not exist on the broker; create it, then start again.',
  },
  RS_INDEX_NOT_BUILT: {
    recovery: 'stop',
    summary:
      "A bulk-loaded version's vector index has not been built yet; it cannot serve (be activated or promoted) until it is.",
  },
  RS_VERSION_IN_USE: {
    recovery: 'stop',
    summary:
      "A version's tables cannot be dropped while its sink still runs (its consumer group has members); stop it first.",
  },
} as const satisfies Record<string, { recovery: Recovery; summary: string }>

export type ErrorCode = keyof typeof ERROR_CODES

export interface RagstreamErrorOptions {
  readonly context?: ErrorContext
  /** What the user can do about it, printed after the message. */
  readonly hint?: string
  readonly cause?: unknown
}

export class RagstreamError extends Error {
  readonly code: ErrorCode
  readonly recovery: Recovery
  /** `recovery` is retry, rejoin or restore: the work is done again, nothing is skipped. */
  readonly retriable: boolean
  readonly context: ErrorContext
  readonly hint: string | undefined

  constructor(code: ErrorCode, message: string, options: RagstreamErrorOptions = {}) {
    // A cause's message may quote a URL with its password (fetch does): never show one.
    super(maskCredentials(message), options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'RagstreamError'
    this.code = code
    this.recovery = ERROR_CODES[code].recovery
    this.retriable = RETRIED.has(this.recovery)
    this.context = options.context ?? {}
    this.hint = options.hint === undefined ? undefined : maskCredentials(options.hint)
  }
}

/** One configuration problem: where, and what is wrong. */
export interface Problem {
  readonly path: string
  readonly message: string
}

/** Collects every problem found in one validation pass; thrown once, listing them all. */
export class ConfigError extends RagstreamError {
  readonly problems: readonly Problem[]
  constructor(
    problems: readonly Problem[],
    what = 'configuration',
    code: ErrorCode = 'RS_CONFIG_INVALID',
    hint?: string,
  ) {
    super(code, `invalid ${what}:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`, {
      context: { path: problems[0]?.path },
      hint,
    })
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** A required service did not answer: names the service and its address so the fix is obvious. */
export class ServiceUnavailableError extends RagstreamError {
  constructor(service: string, address: string, cause?: unknown) {
    const reason = cause instanceof Error ? cause.message : cause === undefined ? 'no answer' : String(cause)
    super('RS_SERVICE_UNAVAILABLE', `${service} is not reachable at ${address}: ${reason}`, {
      context: { service, address },
      hint: 'start the local stack with `npm run stack:up` (scripts/stack.sh up) or set the endpoint variable',
      cause,
    })
    this.name = 'ServiceUnavailableError'
  }
}

/** What a running component's retry event says about a service it waits for: which, where (masked), what to do. */
export interface UnavailableService {
  readonly service: string
  readonly address: string
  readonly hint: string
}

/**
 * The service `error` says did not answer (a ServiceUnavailableError anywhere in its cause chain), for
 * the events of a component that keeps retrying: the fields name it, its address (never a password)
 * and a hint, so a log line alone says what is down.
 */
export function unavailableService(error: unknown): UnavailableService | undefined {
  const seen = new Set<unknown>()
  for (let e = error; e !== null && typeof e === 'object' && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e)
    if (!(e instanceof RagstreamError) || e.code !== 'RS_SERVICE_UNAVAILABLE') continue
    const { service, address } = e.context
    if (typeof service !== 'string' || typeof address !== 'string') continue
    return {
      service,
      address: maskCredentials(address),
      hint: `retried with backoff, nothing is skipped: check that ${service} is up and reachable at ${maskCredentials(address)}`,
    }
  }
  return undefined
}

/** Kafka client errors (@platformatic/kafka's codes are PLT_KFK_*), searched through causes and aggregated errors. */
export function isKafkaClientError(error: unknown): boolean {
  const seen = new Set<unknown>()
  const visit = (e: unknown, depth: number): boolean => {
    if (e === null || typeof e !== 'object' || seen.has(e) || depth > 8) return false
    seen.add(e)
    const fields = e as { code?: unknown; errors?: unknown; cause?: unknown }
    if (typeof fields.code === 'string' && fields.code.startsWith('PLT_KFK_')) return true
    if (Array.isArray(fields.errors) && fields.errors.some((inner) => visit(inner, depth + 1))) return true
    return visit(fields.cause, depth + 1)
  }
  return visit(error, 0)
}

export function isRetriable(error: unknown): boolean {
  return RETRIED.has(recoveryOf(error))
}

/** What any error means for whoever meets it: the recovery, and the code it amounts to (if any). */
export interface Classified {
  readonly recovery: Recovery
  readonly code: ErrorCode | undefined
}

/** Kafka protocol errors (`apiId` of @platformatic/kafka's ProtocolError) and what they amount to. */
const KAFKA_ERRORS: Readonly<Record<string, Classified>> = {
  PRODUCER_FENCED: { recovery: 'stop', code: 'RS_PRODUCER_FENCED' },
  INVALID_PRODUCER_EPOCH: { recovery: 'stop', code: 'RS_PRODUCER_FENCED' },
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: { recovery: 'stop', code: 'RS_PRODUCER_FENCED' },
  ILLEGAL_GENERATION: { recovery: 'rejoin', code: 'RS_GROUP_REBALANCED' },
  UNKNOWN_MEMBER_ID: { recovery: 'rejoin', code: 'RS_GROUP_REBALANCED' },
  REBALANCE_IN_PROGRESS: { recovery: 'rejoin', code: 'RS_GROUP_REBALANCED' },
  FENCED_INSTANCE_ID: { recovery: 'rejoin', code: 'RS_GROUP_REBALANCED' },
  // Positions fell out of the log (retention): re-assign, starting by the reset policy.
  OFFSET_OUT_OF_RANGE: { recovery: 'rejoin', code: undefined },
  MESSAGE_TOO_LARGE: { recovery: 'stop', code: 'RS_MESSAGE_TOO_LARGE' },
  RECORD_LIST_TOO_LARGE: { recovery: 'stop', code: 'RS_MESSAGE_TOO_LARGE' },
  UNKNOWN_TOPIC_OR_PARTITION: { recovery: 'stop', code: 'RS_TOPIC_MISSING' },
}

/** Node system errors that mean "the other side did not answer" (ECONNREFUSED, ETIMEDOUT, EAI_AGAIN, ...). */
const SYSTEM_CODE = /^E[A-Z0-9_]+$/

/**
 * The one place that decides what an error means, for errors of any origin: ragstream's own (by
 * code), the Kafka client's (by protocol error, searched through nested and aggregated errors),
 * Node's system errors anywhere in the cause chain (a service did not answer: retry), and anything
 * else — an error nobody classified is retried with backoff (it may be a service blip), never
 * skipped; the runtime reports it without a code so it shows up as unclassified.
 *
 * @example
 * const { recovery } = classifyError(error) // 'retry' | 'rejoin' | 'restore' | 'dead-letter' | 'stop'
 */
export function classifyError(error: unknown): Classified {
  let network = false
  let kafka: Classified | undefined
  const seen = new Set<unknown>()
  const visit = (e: unknown, depth: number): Classified | undefined => {
    if (e === null || typeof e !== 'object' || seen.has(e) || depth > 8) return undefined
    seen.add(e)
    if (e instanceof RagstreamError) return { recovery: e.recovery, code: e.code }
    const fields = e as { apiId?: unknown; code?: unknown; errors?: unknown; cause?: unknown }
    if (typeof fields.apiId === 'string' && kafka === undefined) kafka = KAFKA_ERRORS[fields.apiId]
    if (typeof fields.code === 'string' && (SYSTEM_CODE.test(fields.code) || fields.code === 'PLT_KFK_NETWORK'))
      network = true
    if (Array.isArray(fields.errors))
      for (const inner of fields.errors) {
        const found = visit(inner, depth + 1)
        if (found) return found
      }
    return visit(fields.cause, depth + 1)
  }
  const own = visit(error, 0)
  if (own) return own
  // A fencing or a rebalance decides over a network error reported beside it.
  if (kafka) return kafka
  if (network) return { recovery: 'retry', code: 'RS_SERVICE_UNAVAILABLE' }
  return { recovery: 'retry', code: undefined }
}

/** The recovery for any error: see `classifyError`. */
export function recoveryOf(error: unknown): Recovery {
  return classifyError(error).recovery
}

/**
 * `text` with every quoted part replaced by `"…"` (double, single and back quotes): for messages of
 * errors ragstream did not write (a JSON parser's, a codec's), which quote the input they failed on,
 * before they go where the input may not (dead-letter headers, logs).
 */
export function quotesWithheld(text: string): string {
  return text
    .replace(/"(?:[^"\\]|\\.)*"?(?:\.\.\.)?/g, '"…"')
    .replace(/'(?:[^'\\]|\\.)*'?/g, "'…'")
    .replace(/`(?:[^`\\]|\\.)*`?/g, '`…`')
}
