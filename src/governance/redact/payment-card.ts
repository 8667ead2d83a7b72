import { digitsOf, longestValidPrefix, type Detector } from './detector.ts'

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
      return two === 34 || two === 37 || two === 36 || two === 38 || two === 39 || (four >= 3528 && four <= 3589) || (four >= 3000 && four <= 3059)
    case '6':
      return true
    default:
      return false
  }
}

function valid(value: string): boolean {
  const digits = digitsOf(value)
  if (digits.length < 13 || digits.length > 19) return false
  // One separator style throughout: "4111 1111 1111 1111" or "4111-1111-…", never mixed.
  if (value.includes(' ') && value.includes('-')) return false
  return knownIssuer(digits) && luhnValid(digits)
}

// "card 4111 1111 1111 1111 123": the card is the longest valid run of whole groups.
function verify(text: string, start: number, end: number): number {
  return longestValidPrefix(text, start, end, (e) => valid(text.slice(start, e)))
}

/**
 * Payment card numbers: 13–19 digits, optionally grouped by spaces or dashes, Luhn-valid and from a
 * known issuer range.
 */
export const paymentCardDetector: Detector = {
  kind: 'payment_card',
  label: 'CARD',
  pattern: /(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w]|[.-]\d)/g,
  verify,
  normalize: digitsOf,
}
