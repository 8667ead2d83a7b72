import { isIPv6 } from 'node:net'
import type { Detector } from './detector.ts'

// Candidates: colon-separated hex groups (each repetition ends at its colon, so there is one way to
// split a string), optionally ending in an embedded IPv4 address. node:net decides validity.
const PATTERN =
  /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}|[0-9A-Fa-f]{0,4})(?![\w:]|\.\d)/g

function verify(text: string, start: number, end: number): number {
  // A sentence may end the address with a colon ("blocked 2001:db8::1: retry"): trim it.
  let e = end
  while (e > start && text.charCodeAt(e - 1) === 58 && text.charCodeAt(e - 2) !== 58) e--
  const value = text.slice(start, e)
  if (!isIPv6(value)) return -1
  // "::", "::1" and clock times are not addresses worth a mask: require two non-empty groups.
  let groups = 0
  for (const part of value.split(':')) if (part !== '') groups++
  return groups >= 2 ? e : -1
}

/** IPv6 addresses in full, compressed (`::`) and IPv4-embedded forms, validated by node:net. */
export const ipv6Detector: Detector = {
  kind: 'ipv6',
  label: 'IPV6',
  pattern: PATTERN,
  mayOccur: (text) => text.includes(':'),
  verify,
  normalize: (value) => value.toLowerCase(),
}
