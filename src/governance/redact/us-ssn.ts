import type { Detector } from './detector.ts'

/** Numbers the SSA never issues, or that were published and are therefore not personal. */
const PUBLISHED = new Set(['078051120', '219099999', '457555462'])

function verify(text: string, start: number, end: number): number {
  const area = Number(text.slice(start, start + 3))
  const group = Number(text.slice(start + 4, start + 6))
  const serial = Number(text.slice(start + 7, start + 11))
  if (area === 0 || area === 666 || area >= 900) return -1
  if (group === 0 || serial === 0) return -1
  if (
    PUBLISHED.has(text.slice(start, start + 3) + text.slice(start + 4, start + 6) + text.slice(start + 7, start + 11))
  )
    return -1
  return end
}

/**
 * US Social Security numbers written `AAA-GG-SSSS` or `AAA GG SSSS`. Invalid by SSA rules: area 000,
 * 666 or 900–999, group 00, serial 0000, and the few numbers that were published in advertising.
 * Unformatted nine-digit runs are not matched: they are indistinguishable from ids.
 */
export const usSsnDetector: Detector = {
  kind: 'us_ssn',
  label: 'SSN',
  pattern: /(?<![\w.-])\d{3}([- ])\d{2}\1\d{4}(?![\w]|[.-]\d)/g,
  verify,
  normalize: (value) => value.replace(/\D/g, ''),
}
