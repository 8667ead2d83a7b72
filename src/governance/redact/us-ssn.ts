import { digitsOf, type Detector } from './detector.ts'

/** Numbers the SSA never issues, or that were published and are therefore not personal. */
const PUBLISHED = new Set(['078051120', '219099999', '457555462'])

// A bare nine-digit run is an SSN only with the word nearby: otherwise it is any id.
const CONTEXT_BEFORE =
  /(?:\bssn|social security(?: number| no\.?| #)?|\bss#|\bssa\b|taxpayer id(?:entification)?(?: number)?|\btin)\W{0,24}(?:\w+\W{1,3}){0,3}$/i
const CONTEXT_AFTER = /^\W{0,3}(?:\w+\W{1,3}){0,3}(?:ssn\b|social security|taxpayer id)/i

function verify(text: string, start: number, end: number): number {
  const digits = digitsOf(text.slice(start, end))
  const area = Number(digits.slice(0, 3))
  const group = Number(digits.slice(3, 5))
  const serial = Number(digits.slice(5, 9))
  if (area === 0 || area === 666 || area >= 900) return -1
  if (group === 0 || serial === 0) return -1
  if (PUBLISHED.has(digits)) return -1
  if (end - start === 9) {
    const before = text.slice(Math.max(0, start - 48), start)
    const after = text.slice(end, end + 40)
    if (!CONTEXT_BEFORE.test(before) && !CONTEXT_AFTER.test(after)) return -1
  }
  return end
}

/**
 * US Social Security numbers written `AAA-GG-SSSS`, `AAA GG SSSS` or `AAA.GG.SSSS` (any Unicode dash
 * or space, through the normalised view), and unformatted `AAAGGSSSS` when the word (SSN, social
 * security, taxpayer id, TIN) stands within a few words before or after. Invalid by SSA rules: area
 * 000, 666 or 900–999, group 00, serial 0000, and the few numbers that were published in advertising.
 */
export const usSsnDetector: Detector = {
  kind: 'us_ssn',
  label: 'SSN',
  pattern: /(?<![\w.-])\d{3}([- .]?)\d{2}\1\d{4}(?![\w]|[.-]\d)/g,
  verify,
  normalize: digitsOf,
}
