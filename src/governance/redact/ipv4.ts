import type { Detector } from './detector.ts'

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)'

/** IPv4 dotted quads with octets 0–255 (no leading zeros), not part of a longer dotted number. */
export const ipv4Detector: Detector = {
  kind: 'ipv4',
  label: 'IPV4',
  pattern: new RegExp(`(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?![\\w]|\\.\\d)`, 'g'),
  mayOccur: (text) => text.includes('.'),
}
