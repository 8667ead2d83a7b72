import { precededBy, type Detector } from './detector.ts'

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)'

// Four-part versions ("driver version 10.2.0.114", "agent 19.17.17.148") are dotted quads too; a
// version word or a software noun right before the quad says it is not an address. The price: an
// address written "client 10.0.0.5" or "upgraded to 10.0.0.5" is not masked (docs/governance.md).
const VERSION_CONTEXT =
  /\b(?:version|ver|build|release|firmware|driver|rev|agent|client|app|sdk|plugin|extension|package|library|kernel|installer|patch|(?:upgrad|updat|downgrad)(?:e|ed|ing)\s+to)[\s:#.]*$/i

/**
 * IPv4 dotted quads with octets 0–255 (no leading zeros), not part of a longer dotted number and not
 * right after a version word (`version`, `build`, `firmware`, `agent`, `sdk`, `upgraded to`, …).
 */
export const ipv4Detector: Detector = {
  kind: 'ipv4',
  label: 'IPV4',
  pattern: new RegExp(`(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?![\\w]|\\.\\d)`, 'g'),
  mayOccur: (text) => text.includes('.'),
  verify: (text, start, end) => (precededBy(text, start, VERSION_CONTEXT) ? -1 : end),
}
