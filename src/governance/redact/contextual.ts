/**
 * Contextual redaction: values the pipeline already knows to be personal — the joined customer row's
 * name, e-mail and phone — are redacted wherever they occur in the document text ("Thanks, Jane
 * Doe"), in the shapes people write them. No pattern can tell a name from a word; the joined row can.
 *
 * Matching, per kind of value (run over the same normalised views as the detectors, so `%40`, NBSP
 * and wrapped lines are covered):
 * - `name`: the whole name case-insensitively with any white space between its words (`jane  doe`,
 *   `JANE\nDOE`), and each word of at least two letters on its own as written in the row or in
 *   upper case (`Thanks, Jane`, `Dear Mr DOE`); a lower-case lone word (`jane`) is not matched,
 *   because names are also words (`grace`, `will`, `may`).
 * - `email`: the address case-insensitively.
 * - `phone`: any digit run (spaces, dashes, dots, parentheses between digits) whose digits are the
 *   number's, also without the country code or with a trunk `0` (`+44 20 7946 0958` ↔ `020 7946 0958`).
 * - `text`: the whole value case-insensitively with any white space between its words.
 */
import type { Detector } from './detector.ts'

export type JoinedKind = 'name' | 'email' | 'phone' | 'text'

/** A known personal value; a plain string's kind is inferred (`@` → email, 7+ digits → phone, else name). */
export interface JoinedValue {
  readonly value: string
  readonly kind?: JoinedKind
  /** Mask / pseudonym label; default `NAME`, `EMAIL`, `PHONE` or `PII` by kind. */
  readonly label?: string
}

/** What a caller knows about the record beyond its text. */
export interface RedactionContext {
  /** Personal values from joined rows (customer name, e-mail, phone), redacted wherever they occur. */
  readonly joined?: readonly (string | JoinedValue)[]
}

export const JOINED_KIND = 'joined'

const LABELS: Record<JoinedKind, string> = { name: 'NAME', email: 'EMAIL', phone: 'PHONE', text: 'PII' }
const PHONE_VALUE = /^[+\d\s().\-/\u00a0\u2010-\u2015]+$/
// A digit run as people write phone numbers: each step consumes one digit after at most two
// separators, so the match is linear.
const DIGIT_RUN = /(?<![\w+])\+?\(?\d(?:[ .\-()/]{0,2}\d){5,17}/g
const WORD_BOUNDARY_BEFORE = '(?<![\\p{L}\\p{N}_])'
const WORD_BOUNDARY_AFTER = '(?![\\p{L}\\p{N}_])'

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

function digitsOf(s: string): string {
  return s.replace(/\D/g, '')
}

export function inferKind(value: string): JoinedKind {
  if (value.includes('@')) return 'email'
  if (PHONE_VALUE.test(value) && digitsOf(value).length >= 7) return 'phone'
  return 'name'
}

/** Canonical form for pseudonyms: same as the built-in detectors' where they overlap. */
export function canonicalJoined(kind: JoinedKind, value: string): string {
  if (kind === 'phone') return (value.trimStart().startsWith('+') ? '+' : '') + digitsOf(value)
  if (kind === 'email') return value.replace(/\s+/g, '').toLowerCase()
  return value.toLowerCase().replace(/\s+/g, ' ').trim()
}

function regexScan(pattern: RegExp): (text: string, found: (start: number, end: number) => void) => void {
  return (text, found) => {
    pattern.lastIndex = 0
    let m: RegExpExecArray | null
    while ((m = pattern.exec(text)) !== null) {
      if (m[0].length === 0) {
        pattern.lastIndex++
        continue
      }
      found(m.index, m.index + m[0].length)
    }
  }
}

// Compiled matchers by value: a customer's tickets repeat the same values, and compiling their
// regexes costs more than scanning a ticket with them. Bounded; cleared whole when full.
const CACHE_LIMIT = 4096
const cache = new Map<string, readonly Detector[]>()

/** Detectors for one record's joined values, or none when no value is usable. */
export function contextualDetectors(context: RedactionContext | undefined): Detector[] {
  const joined = context?.joined
  if (joined === undefined || joined.length === 0) return []
  const out: Detector[] = []
  for (const entry of joined) {
    const spec: JoinedValue = typeof entry === 'string' ? { value: entry } : entry
    if (spec === null || typeof spec !== 'object' || typeof spec.value !== 'string') continue
    const value = spec.value.trim()
    if (value.length < 2) continue
    const kind = spec.kind ?? inferKind(value)
    const label = spec.label ?? LABELS[kind]
    const key = `${kind}\u0000${label}\u0000${value}`
    let detectors = cache.get(key)
    if (detectors === undefined) {
      detectors = compile(value, kind, label)
      if (cache.size >= CACHE_LIMIT) cache.clear()
      cache.set(key, detectors)
    }
    for (const d of detectors) out.push(d)
  }
  return out
}

// The lower-cased text of the latest call, shared by a record's matchers' pre-checks.
let lastText = ''
let lastLower = ''
function lowerOf(text: string): string {
  if (text !== lastText) {
    lastText = text
    lastLower = text.toLowerCase()
  }
  return lastLower
}

function compile(value: string, kind: JoinedKind, label: string): Detector[] {
  // A cheap pre-check: the value's first word (its local part for an e-mail) must occur at all.
  const anchor = (kind === 'email' ? value.slice(0, value.indexOf('@')) : value.split(/[\s\u00a0]+/)[0]).toLowerCase()
  const detector = (scan: Detector['scan'], mayOccur?: (text: string) => boolean): Detector => ({
    kind: JOINED_KIND,
    label,
    scan,
    mayOccur,
    normalize: (v) => canonicalJoined(kind, v),
  })
  const mayOccur = anchor.length > 0 ? (text: string) => lowerOf(text).includes(anchor) : undefined
  if (kind === 'phone') {
    const digits = digitsOf(value)
    return digits.length < 7 ? [] : [detector(phoneScan(digits))]
  }
  if (kind === 'email')
    return [
      detector(regexScan(new RegExp(`(?<![\\w.+%'-])${escape(value)}(?![\\w-]|\\.[A-Za-z0-9])`, 'giu')), mayOccur),
    ]
  const out: Detector[] = []
  const words = value.split(/[\s\u00a0]+/).filter((w) => w.length > 0)
  const whole = words.map(escape).join('\\s+')
  out.push(detector(regexScan(new RegExp(`${WORD_BOUNDARY_BEFORE}${whole}${WORD_BOUNDARY_AFTER}`, 'giu')), mayOccur))
  if (kind === 'name') {
    // Each word of the name on its own, as written or in upper case (a one-word name too).
    const parts = new Set<string>()
    for (const w of words) {
      if (w.replace(/[^\p{L}]/gu, '').length < 2) continue
      parts.add(escape(w))
      parts.add(escape(w.toUpperCase()))
    }
    if (parts.size > 0)
      out.push(
        detector(
          regexScan(new RegExp(`${WORD_BOUNDARY_BEFORE}(?:${[...parts].join('|')})${WORD_BOUNDARY_AFTER}`, 'gu')),
        ),
      )
  }
  return out
}

// A number written with or without its country code or trunk zero: the run's digits equal the
// number's, or one is the other's tail with at least seven digits in common.
function phoneScan(digits: string): NonNullable<Detector['scan']> {
  return (text, found) => {
    DIGIT_RUN.lastIndex = 0
    let m: RegExpExecArray | null
    while ((m = DIGIT_RUN.exec(text)) !== null) {
      const run = digitsOf(m[0])
      const national = run.replace(/^0+/, '')
      const same =
        run === digits ||
        (national.length >= 7 && digits.endsWith(national)) ||
        (digits.length >= 7 && run.endsWith(digits))
      if (same) {
        let start = m.index
        if (text.charCodeAt(start) === 40 && !m[0].includes(')')) start++
        found(start, m.index + m[0].length)
      }
    }
  }
}
