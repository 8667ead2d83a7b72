import { createHmac } from 'node:crypto'
import type { Problem } from '../../errors.ts'

/** Default environment variable holding the pseudonymisation key. */
export const DEFAULT_PSEUDONYM_KEY_ENV = 'RAGSTREAM_PSEUDONYM_KEY'
/** 32 bytes: HMAC-SHA256's output size; shorter keys weaken the pseudonyms. */
export const MIN_PSEUDONYM_KEY_BYTES = 32
const TOKEN_HEX_CHARS = 12
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Keyed pseudonyms: `[EMAIL:3f9a0c1d2e4b]` = the first 48 bits of HMAC-SHA256(key, label NUL value).
 * The same value under the same key always gives the same token (joins and counts still work), a
 * different key gives unrelated tokens, and without the key the value cannot be recovered or
 * confirmed by guessing. The key lives only in a private field: it is never printed, logged or
 * carried in an error.
 */
export class Pseudonymiser {
  readonly #key: Buffer

  private constructor(key: Buffer) {
    this.#key = key
  }

  /** Reads the key from `env[name]`; problems name the variable, never its value. */
  static fromEnvironment(name: string, env: Readonly<Record<string, string | undefined>>, path: string, problems: Problem[]): Pseudonymiser | undefined {
    if (typeof name !== 'string' || !ENV_NAME.test(name)) {
      problems.push({ path, message: 'must be an environment variable name' })
      return undefined
    }
    const value = env[name]
    if (value === undefined || value === '') {
      problems.push({ path, message: `environment variable ${name} is not set (pseudonymisation needs a key of at least ${MIN_PSEUDONYM_KEY_BYTES} bytes)` })
      return undefined
    }
    if (Buffer.byteLength(value) < MIN_PSEUDONYM_KEY_BYTES) {
      problems.push({ path, message: `environment variable ${name} holds a key shorter than ${MIN_PSEUDONYM_KEY_BYTES} bytes` })
      return undefined
    }
    return new Pseudonymiser(Buffer.from(value))
  }

  token(label: string, canonicalValue: string): string {
    const digest = createHmac('sha256', this.#key).update(label).update('\u0000').update(canonicalValue).digest('hex')
    return `[${label}:${digest.slice(0, TOKEN_HEX_CHARS)}]`
  }

  toJSON(): string {
    return '[Pseudonymiser]'
  }
}
