import { continuesNumberLeft, countDigits, digitsOf, longestValidPrefix, type Detector } from './detector.ts'

// Candidates, one alternative per family of formats:
//   international  +44 20 7946 0958 · +1 (415) 555-2671 · +44 (0)20 7946 0958 · +4915123456789
//   NANP           (415) 555-2671 · 415-555-2671 · 415.555.2671 · 415 555 2671
//                  (area code 2–9 first; the exchange's 2–9 rule is only required of the
//                  space-separated form: test data and fictional 555-01xx numbers break it)
//   trunk-prefixed 020 7946 0958 · 07911 123456 · 030 12345678 · 01 23 45 67 89 · 06.12.34.56.78
//                  (020) 7946 0958 · (0151) 23456789
// Each repetition consumes exactly one digit (or one parenthesised group) after an optional single
// separator, so there is one way to match a given string and backtracking is bounded.
const PATTERN =
  /(?<![\w+.#/$€£-])(?:\+\d(?:[ .-]?(?:\(\d{1,4}\)|\d)){7,16}|\([2-9]\d\d\)[ .-]?\d{3}[ .-]\d{4}|[2-9]\d\d([.-])\d{3}\1\d{4}|[2-9]\d\d [2-9]\d\d \d{4}|0\d(?:[ .-]?\d){7,11}|\(0\d{1,4}\)[ .-]?\d(?:[ .-]?\d){4,10})(?![\w]|[.-]\d)/g

const LINKED = /(?:wa\.me|whatsapp\.com\/send\?phone=|phone=|tel:|callto:)\/?\+?$/

// Numbers in messaging and call links, with or without `+`: `wa.me/447911123456`, `tel:…`, `phone=…`.
// A separate pattern with a literal prefix: as a lookbehind alternative of PATTERN it was tried at
// every position of every text.
const LINK = /(?:wa\.me\/|whatsapp\.com\/send\?phone=|phone=|tel:|callto:)(\+?\d{8,15})(?!\w)/g

function scan(text: string, found: (start: number, end: number) => void): void {
  PATTERN.lastIndex = 0
  let match: RegExpExecArray | null
  while ((match = PATTERN.exec(text)) !== null) {
    const start = match.index
    const end = verify(text, start, start + match[0].length)
    if (end <= start) {
      // Not a value: look again from the next character, so a number inside it is still found.
      PATTERN.lastIndex = start + 1
      continue
    }
    found(start, end)
  }
  if (!text.includes('wa.me/') && !text.includes('tel:') && !text.includes('phone=') && !text.includes('callto:'))
    return
  LINK.lastIndex = 0
  while ((match = LINK.exec(text)) !== null) {
    const end = match.index + match[0].length
    found(end - match[1].length, end)
  }
}

/** dd.mm.yyyy, dd-mm-yyyy and friends: dates written like phone numbers. */
const DATE_LIKE = /^\d{1,2}([.-])\d{1,2}\1(?:\d{4}|\d{2})(?![.-]?\d)/

function valid(text: string, start: number, end: number): boolean {
  const digits = countDigits(text, start, end)
  const first = text.charCodeAt(start)
  // A messaging link or a phone parameter (`wa.me/447911123456`): the country code without `+`.
  if (digits === end - start && first !== 48 && LINKED.test(text.slice(Math.max(0, start - 32), start)))
    return digits >= 8 && digits <= 15
  if (first === 43 /* + */) {
    let trunkZero = false
    for (let i = start + 1; i + 2 < end && !trunkZero; i++)
      trunkZero = text.charCodeAt(i) === 40 && text.charCodeAt(i + 1) === 48 && text.charCodeAt(i + 2) === 41
    return digits >= 8 && digits <= (trunkZero ? 16 : 15)
  }
  if (first === 48 /* 0 */ || (first === 40 /* ( */ && text.charCodeAt(start + 1) === 48)) {
    if (digits < 9 || digits > 13) return false
    if (text.charCodeAt(start + 1) === 48 && text.charCodeAt(start + 2) === 48) return false // 000…: padded ids
    return !DATE_LIKE.test(text.slice(start, end))
  }
  return digits === 10
}

// The longest valid number at group boundaries: "+44 20 7946 0958 10.0.0.1" is a phone number
// followed by an address, not a 17-digit non-number.
function verify(text: string, start: number, end: number): number {
  if (continuesNumberLeft(text, start)) return -1
  return longestValidPrefix(text, start, end, (e) => valid(text, start, e))
}

/**
 * Phone numbers in international (`+` and country code, 8–15 digits as E.164 allows) and common
 * national formats (North American 3-3-4 with an area code starting 2–9; trunk-prefixed
 * `0…` numbers of 9–13 digits as written in the UK, Germany, France and most of Europe). Dates
 * written with dots or dashes and zero-padded ids are rejected.
 */
export const phoneDetector: Detector = {
  kind: 'phone',
  label: 'PHONE',
  scan,
  normalize: (value) => (value.startsWith('+') ? '+' : '') + digitsOf(value),
}
