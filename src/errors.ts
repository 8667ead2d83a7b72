/**
 * Every error ragstream raises on purpose carries a stable `code`, a `retriable` flag decided here
 * (callers never switch on codes to decide whether to retry) and typed context naming where it
 * happened. `docs/errors.md` documents each code; `test/errors.test.ts` keeps the two in step.
 */

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

/** The catalogue of codes: each code's retry behaviour is decided once, here. */
export const ERROR_CODES = {
  RS_CONFIG_INVALID: { retriable: false, summary: 'Configuration is invalid; the message names the field.' },
  RS_TOPOLOGY_INVALID: {
    retriable: false,
    summary: 'A topology failed validation at build time; every problem is listed with its path.',
  },
  RS_SERVICE_UNAVAILABLE: {
    retriable: true,
    summary: 'A required service (Kafka, schema registry, Redis, PostgreSQL, embedding service) did not answer.',
  },
  RS_DECODE_FAILED: {
    retriable: false,
    summary: 'A record could not be decoded; it goes to the dead-letter topic with its source position.',
  },
  RS_RECORD_INVALID: {
    retriable: false,
    summary: 'A decoded record broke a rule of the topology; it goes to the dead-letter topic.',
  },
  RS_SCHEMA_INCOMPATIBLE: { retriable: false, summary: 'A schema change failed the registry compatibility check.' },
  RS_PRODUCER_FENCED: {
    retriable: false,
    summary: 'Another instance took over this transactional id; this instance stops.',
  },
  RS_TRANSACTION_UNCERTAIN: {
    retriable: true,
    summary: 'A Kafka transaction outcome is unknown; the batch is aborted and re-processed from committed offsets.',
  },
  RS_SINK_FENCED: {
    retriable: false,
    summary: 'The sink offsets fence moved: another sink instance owns the partition now.',
  },
  RS_EMBEDDING_FAILED: { retriable: true, summary: 'The embedding service failed; retried with backoff.' },
  RS_EMBEDDING_REJECTED: {
    retriable: false,
    summary:
      'The embedding service refused the request (4xx other than 429): API key, model name or input size; not retried.',
  },
  RS_EMBEDDING_DIMENSIONS: { retriable: false, summary: 'The embedding service returned vectors of the wrong size.' },
  RS_EMBEDDING_MODEL_MISSING: {
    retriable: false,
    summary:
      'A local embedding model is not installed in the models folder, or its files differ from the pinned sha256.',
  },
  RS_IDENTIFIER_INVALID: {
    retriable: false,
    summary: 'A SQL identifier from configuration failed the allow-list or is longer than 63 bytes.',
  },
  RS_STATE_NOT_PREFETCHED: {
    retriable: false,
    summary:
      'A topology read a state-store key that its prefetchKeys did not declare for the batch (a bug in the operator).',
  },
  RS_STATE_FENCED: {
    retriable: false,
    summary:
      'A state-store write was refused: Redis holds a newer changelog checkpoint, so another instance owns the partition now.',
  },
  RS_FORGET_UNCONFIRMED: {
    retriable: true,
    summary:
      'A deletion request was not confirmed by every processor partition and the sink within the --wait timeout.',
  },
  RS_STATE_LOST: {
    retriable: false,
    summary:
      'Redis no longer holds the checkpoint this instance last wrote or restored for a store partition; the partition must be restored from its changelog.',
  },
  RS_VERSION_IN_USE: {
    retriable: true,
    summary:
      "A version's tables cannot be dropped while its sink still runs (its consumer group has members); stop it first.",
  },
} as const satisfies Record<string, { retriable: boolean; summary: string }>

export type ErrorCode = keyof typeof ERROR_CODES

export interface RagstreamErrorOptions {
  readonly context?: ErrorContext
  /** What the user can do about it, printed after the message. */
  readonly hint?: string
  readonly cause?: unknown
}

export class RagstreamError extends Error {
  readonly code: ErrorCode
  readonly retriable: boolean
  readonly context: ErrorContext
  readonly hint: string | undefined

  constructor(code: ErrorCode, message: string, options: RagstreamErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'RagstreamError'
    this.code = code
    this.retriable = ERROR_CODES[code].retriable
    this.context = options.context ?? {}
    this.hint = options.hint
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

export function isRetriable(error: unknown): boolean {
  return error instanceof RagstreamError && error.retriable
}
