import { isIPv6 } from 'node:net'
import { ALNUM_CHARS, asciiClass, inClass, type Detector } from './detector.ts'

const CANDIDATE = asciiClass('0123456789abcdefABCDEF:.')
const WORD = asciiClass(`${ALNUM_CHARS}_`)

function groups(value: string): number {
  let n = 0
  let inGroup = false
  for (let i = 0; i < value.length; i++) {
    const colon = value.charCodeAt(i) === 58
    if (!colon && !inGroup) n++
    inGroup = !colon
  }
  return n
}

/**
 * Takes each maximal run of hex digits, colons and dots that contains two colons and is not glued
 * to a word, trims sentence punctuation (`…::1:` / `…::1.`) and lets node:net decide. "::", "::1"
 * and clock times are not addresses worth a mask: two non-empty groups are required.
 */
function scan(text: string, found: (start: number, end: number) => void): void {
  let at = text.indexOf(':')
  while (at !== -1) {
    let start = at
    while (start > 0 && inClass(CANDIDATE, text.charCodeAt(start - 1))) start--
    // "host:2001:db8::1": a single colon after a word separates, it does not start the address.
    if (
      text.charCodeAt(start) === 58 &&
      text.charCodeAt(start + 1) !== 58 &&
      start > 0 &&
      inClass(WORD, text.charCodeAt(start - 1))
    )
      start++
    let end = at + 1
    let colons = 1
    while (end < text.length && inClass(CANDIDATE, text.charCodeAt(end))) {
      if (text.charCodeAt(end) === 58) colons++
      end++
    }
    // "…::c8b2.Next" / "…::c8b2:end": a word glued on after a dot or colon is the next sentence; cut
    // the run at that dot or colon.
    const runEnd = end
    if (end < text.length && inClass(WORD, text.charCodeAt(end))) {
      let cut = end - 1
      while (cut > start && text.charCodeAt(cut) !== 46 && text.charCodeAt(cut) !== 58) cut--
      if (cut > start && cut >= end - 5) end = cut
    }
    const glued =
      (start > 0 && inClass(WORD, text.charCodeAt(start - 1))) ||
      (end < text.length && inClass(WORD, text.charCodeAt(end)))
    // 45 characters is the longest IPv6 text form (IPv4-embedded); longer runs are not one address.
    if (colons >= 2 && !glued && end - start <= 47) {
      let e = end
      while (
        e > start + 2 &&
        (text.charCodeAt(e - 1) === 46 || (text.charCodeAt(e - 1) === 58 && text.charCodeAt(e - 2) !== 58))
      )
        e--
      const value = text.slice(start, e)
      if (groups(value) >= 2 && isIPv6(value)) found(start, e)
    }
    at = text.indexOf(':', runEnd)
  }
}

/** IPv6 addresses in full, compressed (`::`) and IPv4-embedded forms, validated by node:net. */
export const ipv6Detector: Detector = {
  kind: 'ipv6',
  label: 'IPV6',
  scan,
  normalize: (value) => value.toLowerCase(),
}
