import { continuesNumberLeft, digitsOf, precededBy, type Detector } from './detector.ts'

const ID_CONTEXT =
  /\b(?:transaction|txn|order|invoice|tracking|parcel|shipment|reference|ref|booking)(?:\s+(?:id|no\.?|number|#))?[\s:#.]*$/i

/** Luhn (mod 10) check over a string of digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (double) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
    double = !double
  }
  return sum % 10 === 0
}

/**
 * Issuer prefixes of the networks that issue cards people paste into tickets: Visa 4, Mastercard
 * 51–55 and 2221–2720, Amex 34/37, Discover 6011/644–649/65, JCB 3528–3589, Diners 300–305/36/38/39,
 * UnionPay 62, Maestro 50/56–58/6. A Luhn-valid number outside these is far more likely an id.
 */
function knownIssuer(d: string): boolean {
  const two = Number(d.slice(0, 2))
  const four = Number(d.slice(0, 4))
  switch (d[0]) {
    case '4':
      return true
    case '5':
      return two >= 50 && two <= 58
    case '2':
      return four >= 2221 && four <= 2720
    case '3':
      return (
        two === 34 ||
        two === 37 ||
        two === 36 ||
        two === 38 ||
        two === 39 ||
        (four >= 3528 && four <= 3589) ||
        (four >= 3000 && four <= 3059)
      )
    case '6':
      return true
    default:
      return false
  }
}

// Dots group a card only on their own ("4111.1111.1111.1111"): mixed with spaces they are the
// decimal points of the numbers around ("+44 20 7946 0958 10.0.0.1"). Spaces and dashes may mix.
function dotsMixed(text: string, start: number, end: number): boolean {
  let dot = false
  let other = false
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c === 46) dot = true
    else if (c === 32 || c === 45) other = true
  }
  return dot && other
}

// "card 4111 1111 1111 1111 123": the card is the longest run of whole groups that is valid. The
// issuer is decided by the first digits, so it is checked once; the cuts are tried from the right
// with the digit count kept incrementally (this runs for every digit run in a text).
function verify(text: string, start: number, end: number): number {
  const value = text.slice(start, end)
  const digits = digitsOf(value)
  if (digits.length < 13 || !knownIssuer(digits) || continuesNumberLeft(text, start)) return -1
  // An unseparated number named as an id ("transaction id 4438…") is that id, not a card.
  if (digits.length === end - start && precededBy(text, start, ID_CONTEXT)) return -1
  let n = digits.length
  for (let e = end; e > start; e--) {
    if (e !== end) {
      const c = text.charCodeAt(e)
      if (c >= 48 && c <= 57) {
        n--
        continue
      }
    }
    if (n < 13) return -1
    if (n <= 19 && luhnValid(digits.slice(0, n)) && !dotsMixed(text, start, e)) return e
  }
  return -1
}

/**
 * Payment card numbers: 13–19 digits, optionally grouped by spaces, dashes or dots (mixed too; any
 * Unicode dash or space and a line break between groups, through the normalised view), Luhn-valid
 * and from a known issuer range.
 */
export const paymentCardDetector: Detector = {
  kind: 'payment_card',
  label: 'CARD',
  pattern: /(?<![\w.+-])\d(?:[ .-]?\d){12,18}(?![\w]|[.-]\d)/g,
  verify,
  normalize: digitsOf,
}
