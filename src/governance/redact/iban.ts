import type { Detector } from './detector.ts'

/** IBAN length per country (ISO 13616 registry, SWIFT release 2024). */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24,
  AE: 23,
  AL: 28,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BI: 27,
  BR: 29,
  BY: 28,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DJ: 27,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FK: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IQ: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LC: 32,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  LY: 25,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MN: 20,
  MR: 27,
  MT: 31,
  MU: 30,
  NI: 28,
  NL: 18,
  NO: 15,
  OM: 23,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  RU: 33,
  SA: 24,
  SC: 31,
  SD: 18,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  SO: 23,
  ST: 25,
  SV: 28,
  TL: 23,
  TN: 24,
  TR: 26,
  UA: 29,
  VA: 22,
  VG: 24,
  XK: 20,
  YE: 30,
}

/** ISO 7064 mod 97-10 over the compact IBAN (country + check digits moved to the end). */
export function ibanChecksumValid(compact: string): boolean {
  const rearranged = compact.slice(4) + compact.slice(0, 4)
  let remainder = 0
  for (let i = 0; i < rearranged.length; i++) {
    const c = rearranged.charCodeAt(i)
    if (c >= 48 && c <= 57) remainder = (remainder * 10 + (c - 48)) % 97
    else if (c >= 65 && c <= 90) remainder = (remainder * 100 + (c - 55)) % 97
    else return false
  }
  return remainder === 1
}

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
}

// The candidate may run on into following upper-case words ("… 0130 00 IS MINE"); verify takes
// exactly the country's length of characters and ends the value there.
function verify(text: string, start: number, end: number): number {
  const length = IBAN_LENGTHS[text.slice(start, start + 2).toUpperCase()]
  if (length === undefined) return -1
  let compact = ''
  let i = start
  while (i < end && compact.length < length) {
    const c = text.charCodeAt(i)
    if (c !== 32 && c !== 45) compact += text[i]
    i++
  }
  if (compact.length !== length) return -1
  if (i < text.length && isAlnum(text.charCodeAt(i))) return -1
  // A dash-grouped token that goes on ("ba56f321-8320-4265-905d-7367f290e98e", a UUID) is not an IBAN.
  if (text.charCodeAt(i) === 45 && isAlnum(text.charCodeAt(i + 1)) && text.lastIndexOf('-', i - 1) >= start) return -1
  return ibanChecksumValid(compact.toUpperCase()) ? i : -1
}

/**
 * International Bank Account Numbers, compact (`DE89370400440532013000`) or in groups separated by
 * spaces or dashes (`DE89 3704 0044 0532 0130 00`, `de89-3704-…`), in any letter case: known country,
 * that country's length, mod-97 check.
 */
export const ibanDetector: Detector = {
  kind: 'iban',
  label: 'IBAN',
  pattern: /(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,30}/g,
  verify,
  normalize: (value) => value.replace(/[\s-]/g, '').toUpperCase(),
}
