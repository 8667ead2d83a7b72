import type { Detector } from './detector.ts'

// One alternative per credential format with a recognisable prefix. Bodies are bounded character
// classes that cannot contain the next token's separator, so each candidate is scanned once.
//   AWS access key id         AKIA|ASIA|ABIA|ACCA + 16 upper-case alphanumerics
//   GitHub tokens             ghp_|gho_|ghu_|ghs_|ghr_ + 36+; github_pat_ + 22+ [A-Za-z0-9_]
//   Slack tokens              xoxb-|xoxp-|xoxa-|xoxr-|xoxs- …; Slack webhook URLs
//   Stripe secret keys        sk_live_|sk_test_|rk_live_|rk_test_ + 16+
//   OpenAI keys               sk-… / sk-proj-… (20+ of [A-Za-z0-9_-])
//   Google API keys           AIza + 35
//   PEM private key blocks    -----BEGIN … PRIVATE KEY----- body -----END … PRIVATE KEY-----
//   JSON Web Tokens           eyJ….eyJ….signature
const ALTERNATIVES = [
  String.raw`(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])`,
  String.raw`gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])`,
  String.raw`github_pat_[A-Za-z0-9_]{22,255}(?![A-Za-z0-9_])`,
  String.raw`xox[abeprs]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9-])`,
  String.raw`https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,200}`,
  String.raw`[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}(?![A-Za-z0-9])`,
  String.raw`sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,250}(?![A-Za-z0-9_-])`,
  String.raw`AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])`,
  // PEM: separators are newlines, JSON-escaped "\n" or spaces (keys pasted into one line); body items
  // are base64 runs or RFC 1421 headers (Proc-Type: 4,ENCRYPTED). The END line is optional.
  String.raw`-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----(?:(?:\r?\n|\\n|[ \t])+(?:[A-Za-z-]{1,40}: ?[A-Za-z0-9,-]{1,200}|[A-Za-z0-9+/=]+))*(?:(?:\r?\n|\\n|[ \t])*-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY-----)?`,
  String.raw`eyJ[A-Za-z0-9_-]{5,4096}\.eyJ[A-Za-z0-9_-]{5,8192}\.[A-Za-z0-9_-]{0,4096}(?![A-Za-z0-9_-])`,
]

const PATTERN = new RegExp(`(?<![A-Za-z0-9_-])(?:${ALTERNATIVES.join('|')})`, 'g')

function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13
}

// A truncated PEM block (no END line) runs on into the words that follow; PEM lines are 64
// characters, so trailing short all-letter tokens are prose and are given back. One backward pass.
function withoutTrailingWords(text: string, start: number, end: number): number {
  let e = end
  for (;;) {
    let i = e
    while (i > start && isLetter(text.charCodeAt(i - 1))) i--
    if (i === e || e - i > 15) return e
    let j = i
    while (j > start && isSpace(text.charCodeAt(j - 1))) j--
    if (j === i) return e
    e = j
  }
}

function verify(text: string, start: number, end: number): number {
  if (text.startsWith('-----BEGIN', start))
    return text.endsWith('KEY-----', end) ? end : withoutTrailingWords(text, start, end)
  // "sk-" is a common word fragment ("sk-1" in a SKU): a real OpenAI key body mixes letters and digits.
  if (text.startsWith('sk-', start)) {
    let letters = 0
    let digits = 0
    for (let i = start + 3; i < end; i++) {
      const c = text.charCodeAt(i)
      if (c >= 48 && c <= 57) digits++
      else if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) letters++
    }
    return letters >= 8 && digits >= 2 ? end : -1
  }
  return end
}

/**
 * Credentials with a known shape: cloud and SaaS API keys by prefix, PEM private key blocks (also
 * truncated ones, from the BEGIN line through the key body), and JWTs. Unprefixed secrets are the
 * `high_entropy` detector's job.
 */
export const secretDetector: Detector = {
  kind: 'secret',
  label: 'SECRET',
  pattern: PATTERN,
  verify,
}
