import type { Detector } from './detector.ts'

/**
 * Email addresses (RFC 5322 "dot-atom" subset that people actually write): a local part of at most
 * 64 characters, a domain of 1–8 labels and an alphabetic TLD. The lookbehind makes the scan enter
 * each run of local-part characters once; every repetition is bounded.
 */
export const emailDetector: Detector = {
  kind: 'email',
  label: 'EMAIL',
  pattern:
    /(?<![A-Za-z0-9._%+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])/g,
  mayOccur: (text) => text.includes('@'),
  normalize: (value) => value.toLowerCase(),
}
