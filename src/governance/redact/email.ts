import { ALNUM_CHARS, asciiClass, inClass, type Detector } from './detector.ts'

const LOCAL = asciiClass(`${ALNUM_CHARS}._%+-'`)
const ALNUM = asciiClass(ALNUM_CHARS)
// The domain, matched sticky right after the `@`: 1–8 labels and an alphabetic TLD, all bounded.
// A dash after the TLD ends the address unless more labels follow ("x@a.com-based" is x@a.com,
// "x@a.co-op.org" is one domain).
const DOMAIN =
  /[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9])(?!-[A-Za-z0-9-]{0,62}\.[A-Za-z0-9])/y

/**
 * Finds each `@`, walks back over the local part (at most 64 characters of letters, digits and
 * `._%+-'`, starting at its first letter or digit) and matches the domain after it, without entering
 * a regex at every position.
 */
function scan(text: string, found: (start: number, end: number) => void): void {
  let at = text.indexOf('@')
  while (at !== -1) {
    let start = at
    while (start > 0 && at - start < 64 && inClass(LOCAL, text.charCodeAt(start - 1))) start--
    let next = at + 1
    const whole = start === 0 || !inClass(LOCAL, text.charCodeAt(start - 1))
    // Quotes and dots before the address belong to the sentence ('anna@x.com', …anna@x.com).
    while (start < at && !inClass(ALNUM, text.charCodeAt(start))) start++
    if (start < at && whole) {
      DOMAIN.lastIndex = at + 1
      if (DOMAIN.test(text)) {
        found(start, DOMAIN.lastIndex)
        next = DOMAIN.lastIndex
      }
    }
    at = text.indexOf('@', next)
  }
}

/**
 * Email addresses (RFC 5322 "dot-atom" subset that people actually write): a local part of at most
 * 64 characters, a domain of 1–8 labels and an alphabetic TLD.
 */
export const emailDetector: Detector = {
  kind: 'email',
  label: 'EMAIL',
  scan,
  normalize: (value) => value.toLowerCase(),
}
