/**
 * The user-code boundary, in one place. A throw inside a user function (a decoder's value, a
 * predicate, mapper, foreign key, joiner, encoder, a getter chain of those) is that record's failure:
 * the record's effects are undone and it goes to the dead-letter topic naming the node. Any other
 * throw (a store, the runtime, an operator bug) fails the whole batch, which the runtime's recovery
 * decides about (src/errors.ts). Operators never decide this by hand: they wrap each user function
 * once, at compile time, with `userFunction`, and report a user value that breaks a rule (a foreign
 * key that is not a string, an encoder's wrong shape) with `recordFailure`.
 *
 * Why a wrapper instead of a flag on the scope: a flag must be set and reset around every call
 * (11 pairs once lived across the operators), and a forgotten reset turns the next transient error
 * into a dead letter. A wrapper cannot be forgotten halfway, and the wrapper costs one try/catch per
 * call, which V8 optimizes like any other frame.
 */

/** A record's failure, thrown through the operators to compile's per-record catch. */
export class RecordFailure extends Error {
  /** The node whose user code failed: named in the dead letter. */
  readonly node: string
  /** What the user code threw (its code, when a RagstreamError, goes into the dead letter). */
  readonly error: unknown

  constructor(node: string, error: unknown) {
    super(error instanceof Error ? error.message : String(error), { cause: error })
    this.name = 'RecordFailure'
    this.node = node
    this.error = error
  }
}

/** `error` as the failure of the record being processed at `node` (an inner node's failure is kept). */
export function recordFailure(node: string, error: unknown): RecordFailure {
  return error instanceof RecordFailure ? error : new RecordFailure(node, error)
}

/**
 * `fn`, wrapped so that anything it throws is a record failure at `node`. User functions take at most
 * two arguments (value and key, left and right, key and value); the wrapper passes exactly two.
 */
export function userFunction<F extends (...args: never[]) => unknown>(node: string, fn: F): F {
  const call = fn as unknown as (a: unknown, b: unknown) => unknown
  const wrapped = (a: unknown, b: unknown): unknown => {
    try {
      return call(a, b)
    } catch (error) {
      throw recordFailure(node, error)
    }
  }
  return wrapped as unknown as F
}
