/**
 * The contract every PII / secret detector implements. A detector is a global regular expression
 * that finds candidates cheaply plus an optional `verify` that decides (checksum, validity rules,
 * entropy) whether a candidate really is one, and may shorten it.
 *
 * Why regexes are written the way they are: V8's engine backtracks, so every built-in pattern
 * (1) starts with a negative lookbehind, so a run of candidate characters is entered at most once,
 * (2) bounds its repetitions or uses unambiguous repetitions (`(?:[ -]?\d){12,18}`: each step consumes
 * exactly one digit), never a nested quantifier over overlapping alternatives. Scanning is then
 * linear in the text length with a small constant; test/governance/redact/adversarial.test.ts holds
 * the proof inputs. Detectors whose candidates hinge on a rare character or a long run use a
 * hand-written `scan` instead: same semantics, one pass, several times faster.
 */

/** The built-in detector kinds: each is also the key of its redaction count. */
export const BUILT_IN_DETECTORS = [
  'secret',
  'password',
  'iban',
  'payment_card',
  'us_ssn',
  'email',
  'ipv6',
  'ipv4',
  'phone',
  'high_entropy',
] as const

export type BuiltInDetectorKind = (typeof BUILT_IN_DETECTORS)[number]

export interface Detector {
  /** Count key and pseudonym domain, e.g. `email` or a custom pattern's name. */
  readonly kind: string
  /** Mask label: `[EMAIL]`, `[EMAIL:3f9a…]`. */
  readonly label: string
  /** Global (`g`) pattern yielding candidates (unless `scan` is given). */
  readonly pattern?: RegExp
  /**
   * A hand-written scanner used instead of `pattern`, for detectors anchored on a rare character
   * (`@`, `:`) or on long runs, where a regex would be entered at every position. Calls `found` with
   * each verified value's bounds, in order.
   */
  readonly scan?: (text: string, found: (start: number, end: number) => void) => void
  /** A cheap whole-text pre-check: false means the pattern cannot match, so the scan is skipped. */
  readonly mayOccur?: (text: string) => boolean
  /**
   * Returns the end index of the verified value (the candidate's end or less), or -1 when the
   * candidate is not a real value.
   */
  readonly verify?: (text: string, start: number, end: number) => number
  /** Canonical form for pseudonymisation, so `A@X.com` and `a@x.com` get the same token. */
  readonly normalize?: (value: string) => string
}

/** Counts the ASCII digits of `text[start, end)`. */
export function countDigits(text: string, start: number, end: number): number {
  let n = 0
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c >= 48 && c <= 57) n++
  }
  return n
}

/** The ASCII digits of a value, e.g. for checksums and canonical forms. */
export function digitsOf(value: string): string {
  let out = ''
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c >= 48 && c <= 57) out += value[i]
  }
  return out
}

/**
 * Whether the few characters before `start` end with a context word, e.g. `version ` before a dotted
 * quad. Looks back at most 32 characters, so the check is constant-time.
 */
export function precededBy(text: string, start: number, context: RegExp): boolean {
  return context.test(text.slice(Math.max(0, start - 32), start))
}

/** A 128-entry membership table for ASCII character classes used by hand-written scanners. */
export function asciiClass(chars: string): Uint8Array {
  const table = new Uint8Array(128)
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1
  return table
}

export function inClass(table: Uint8Array, c: number): boolean {
  return c < 128 && table[c] === 1
}

export const ALNUM_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'

/**
 * Greedy candidates can run on into a following number ("+44 20 7946 0958 10.0.0.1", "card 4111
 * 1111 1111 1111 123"): returns the longest end, at the candidate's end or at a separator between
 * groups (a space, a dash, or a dot not followed by a digit), for which `valid` holds, or -1. Candidates are short (bounded by their
 * patterns), so trying each group boundary is cheap.
 */
export function longestValidPrefix(text: string, start: number, end: number, valid: (end: number) => boolean): number {
  for (let e = end; e > start; e--) {
    if (e !== end) {
      const c = text.charCodeAt(e)
      if (c !== 32 && c !== 46 && c !== 45) continue
      // A dot followed by a digit continues a number (10.0.0.1, 3.5): no cut there.
      const next = text.charCodeAt(e + 1)
      if (c === 46 && next >= 48 && next <= 57) continue
    }
    if (valid(e)) return e
  }
  return -1
}

/**
 * Whether the digits at `start` continue a number on their left ("9205 0358 1239 …": a parcel
 * number's inner groups are not a phone number): a group of three or more digits and one separator
 * right before `start`.
 */
export function continuesNumberLeft(text: string, start: number): boolean {
  if (start < 4) return false
  const sep = text.charCodeAt(start - 1)
  if (sep !== 32 && sep !== 45 && sep !== 46) return false
  // A group of at least three digits: a lone "1 " before a number is a country code or a count.
  for (let i = start - 4; i < start - 1; i++) {
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}
