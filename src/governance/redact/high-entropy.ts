import { ALNUM_CHARS, asciiClass, inClass, precededBy, type Detector } from './detector.ts'

/** Thresholds of the high-entropy detector; the defaults are documented in docs/governance.md. */
export interface EntropyThresholds {
  /** Shortest token considered (after stripping `=` padding). Default 20. */
  readonly minLength: number
  /** Hex-only tokens must be at least this long (a 32-hex token is 128 bits). Default 32. */
  readonly minHexLength: number
  /** Minimum Shannon entropy as a fraction of the maximum possible for the token's length. Default 0.8. */
  readonly entropyRatio: number
  /** Minimum share of adjacent character pairs that change class (upper/lower/digit/symbol). Default 0.3. */
  readonly classChangeRatio: number
}

export const DEFAULT_ENTROPY_THRESHOLDS: EntropyThresholds = {
  minLength: 20,
  minHexLength: 32,
  entropyRatio: 0.8,
  classChangeRatio: 0.3,
}

// Character counts reused across calls: the detector runs synchronously and allocates nothing.
const counts = new Int32Array(128)

/** Shannon entropy (bits per character) of `text[start, end)`, ASCII only. */
export function shannonEntropy(text: string, start: number, end: number): number {
  counts.fill(0)
  for (let i = start; i < end; i++) counts[text.charCodeAt(i) & 127]++
  const n = end - start
  let h = 0
  for (let i = 0; i < 128; i++) {
    const c = counts[i]
    if (c > 0) {
      const p = c / n
      h -= p * Math.log2(p)
    }
  }
  return h
}

function charClass(c: number): number {
  if (c >= 48 && c <= 57) return 0
  if (c >= 65 && c <= 90) return 1
  if (c >= 97 && c <= 122) return 2
  return 3
}

/**
 * Decides whether `text[start, end)` looks like a random secret rather than a word, identifier or
 * hash-like id. Random tokens change character class often and come close to the maximum entropy
 * their length allows; CamelCase identifiers and words do neither.
 */
export function looksRandom(text: string, start: number, end: number, t: EntropyThresholds): boolean {
  while (end > start && text.charCodeAt(end - 1) === 61 /* = */) end--
  const n = end - start
  if (n < t.minLength) return false
  let hexOnly = true
  let upper = 0
  let lower = 0
  let digit = 0
  let changes = 0
  let previous = -1
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i)
    const k = charClass(c)
    if (k === 0) digit++
    else if (k === 1) upper++
    else if (k === 2) lower++
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) hexOnly = false
    if (previous !== -1 && k !== previous) changes++
    previous = k
  }
  // Cheap rejections first: most long tokens in prose are paths and identifiers.
  if (hexOnly) {
    // Hex: 16 symbols, so the ceiling is log2(16) = 4 bits; ids and hashes are in this class too.
    if (n < t.minHexLength || digit === 0 || digit === n) return false
    return shannonEntropy(text, start, end) >= t.entropyRatio * Math.min(4, Math.log2(n))
  }
  // A long base64 value may lack digits by chance (1 in ~1,000 at 44 characters); its `+` or `/`
  // stands in for them.
  if (upper === 0 || lower === 0 || (digit === 0 && !(n >= 32 && n - upper - lower > 0))) return false
  if (changes / (n - 1) < t.classChangeRatio) return false
  return shannonEntropy(text, start, end) >= t.entropyRatio * Math.min(6, Math.log2(n))
}

// Token characters: base64, base64url and hex. `=` is padding: at most two, only at the end, so
// `api_key=<token>` yields the token.
const TOKEN = asciiClass(`${ALNUM_CHARS}+/_-`)

/**
 * Unprefixed secrets: tokens of base64 / base64url / hex characters at least `minLength` long whose
 * Shannon entropy and character-class mix say "random". UUIDs are ids, not secrets, and are skipped, as
 * are hex tokens right after a hash word (`commit`, `sha256`, `checksum`, …).
 */
export function highEntropyDetector(thresholds: EntropyThresholds = DEFAULT_ENTROPY_THRESHOLDS): Detector {
  // One pass over maximal token runs: equivalent to
  // `(?<![token])[token]{minLength,}={0,2}(?![token=])`, linear however long a run is.
  const scan = (text: string, found: (start: number, end: number) => void): void => {
    const n = text.length
    let i = 0
    while (i < n) {
      if (!inClass(TOKEN, text.charCodeAt(i))) {
        i++
        continue
      }
      const start = i
      while (i < n && inClass(TOKEN, text.charCodeAt(i))) i++
      let end = i
      while (end < n && end - i < 2 && text.charCodeAt(end) === 61) end++
      const closed = end === n || (!inClass(TOKEN, text.charCodeAt(end)) && text.charCodeAt(end) !== 61)
      if (closed && i - start >= thresholds.minLength && !isIdentifier(text, start, i)) {
        if (isSecret(text, start, end)) found(start, end)
        else segments(text, start, i, found)
      }
      i = end
    }
  }
  // A secret joined to words by `-`, `_` or `/` ("<hex>-prod", "hooks/<token>/") fails as a whole;
  // its segments between those joiners are judged on their own.
  const segments = (text: string, start: number, end: number, found: (start: number, end: number) => void): void => {
    let from = start
    for (let j = start; j <= end; j++) {
      const c = j === end ? 45 : text.charCodeAt(j)
      if (c !== 45 && c !== 95 && c !== 47) continue
      if (from > start || j < end) {
        if (j - from >= thresholds.minLength && isSecret(text, from, j)) found(from, j)
      }
      from = j + 1
    }
  }
  const isSecret = (text: string, start: number, end: number): boolean => {
    if (!looksRandom(text, start, end, thresholds)) return false
    if (end - start === 36 && UUID.test(text.slice(start, end))) return false
    const token = text.slice(start, end)
    if (!HEX_TOKEN.test(token)) return true
    if (precededBy(text, start, HASH_CONTEXT)) return false
    // A dashless UUID (version and variant digits in place) is an id, unless named as a key.
    return !(token.length === 32 && DASHLESS_UUID.test(token) && !precededBy(text, start, SECRET_CONTEXT))
  }
  return { kind: 'high_entropy', label: 'SECRET', scan }
}

// Hex named as a hash right before it ("commit 3f9a…", "sha256: …", ".../commit/3f9a…") is a content
// address, not a key.
const HASH_CONTEXT = /\b(?:commits?|sha1|sha256|sha512|sha|hash|checksum|digest|revision|rev|etag|tree|blob)[\s:=#/]*$/i
const SECRET_CONTEXT = /\b(?:key|token|secret|password|passwd|signature|sig|auth|bearer|credentials?|apikey)\W{0,4}$/i
const DASHLESS_UUID = /^[0-9a-fA-F]{12}[1-8][0-9a-fA-F]{3}[89abAB][0-9a-fA-F]{15}$/
// Identifiers that look random but name objects: W3C trace context (`00-<trace id>-<span id>-01`) and
// Stripe object ids (`ch_…`, `pi_…`, `cus_…`; not the `sk_`/`rk_` keys, which the secret detector
// finds, nor `whsec_` webhook secrets).
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/
const STRIPE_ID =
  /^(?:acct|ba|card|ch|cn|cs_(?:live|test)|cus|dp|du|evt|fee|file|ii|il|in|iv|po|pi|pm|prod|price|py|pyr|re|seti|si|sub|src|tok|tr|txn|trr|req)_[A-Za-z0-9]{8,}$/

function isIdentifier(text: string, start: number, end: number): boolean {
  const first = text.charCodeAt(start)
  if (first === 48 && end - start === 55) return TRACEPARENT.test(text.slice(start, end))
  // A Stripe prefix is at most 8 characters before its `_`: look no further before the regex.
  for (let i = start + 2, stop = Math.min(end, start + 9); i < stop; i++)
    if (text.charCodeAt(i) === 95) return STRIPE_ID.test(text.slice(start, end))
  return false
}
const HEX_TOKEN = /^[0-9a-fA-F]+$/
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
