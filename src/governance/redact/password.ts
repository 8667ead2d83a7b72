import { type Detector } from './detector.ts'

// The keyword and its separator: "password is …", "pwd: …", "passwd=…", "Passwort: …". The scan
// looks for these (literal alternatives: cheap to find) and takes the token after them.
const KEYWORD =
  /(?<![A-Za-z0-9_])(?:password|passwort|passwd|passphrase|pwd|pin|kennwort|mot de passe)(?:\s{0,3}(?:is|was|ist)\s{1,3}|\s{0,3}[:=]\s{0,3})/gi
// The value: a run of non-space characters, not a quote or bracket.
const VALUE = /[^\s"'`<>()[\]{}]{3,128}/y

/**
 * A password-like value: a digit, a symbol, or an upper-case letter after the first character.
 * Ordinary words after "password is" ("incorrect", "expired", "Wrong") are prose, not passwords.
 */
function passwordLike(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i)
    const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
    if (!letter) return true
    if (i > start && c >= 65 && c <= 90) return true
  }
  return false
}

function scan(text: string, found: (start: number, end: number) => void): void {
  KEYWORD.lastIndex = 0
  while (KEYWORD.exec(text) !== null) {
    VALUE.lastIndex = KEYWORD.lastIndex
    if (!VALUE.test(text)) continue
    const start = KEYWORD.lastIndex
    let end = VALUE.lastIndex
    // Sentence punctuation after the value is not part of it ("… is hunter2.").
    while (end > start + 3 && /[.,;:]/.test(text[end - 1])) end--
    if (passwordLike(text, start, end)) {
      found(start, end)
      KEYWORD.lastIndex = end
    }
  }
}

/**
 * Passwords written after a keyword — `password: …`, `my password is …`, `pwd=…`, `PIN: …` (also
 * German and French keywords). Only the value is removed; the keyword stays, so the ticket still reads.
 */
export const passwordDetector: Detector = {
  kind: 'password',
  label: 'PASSWORD',
  mayOccur: (text) => /p(?:ass|w|in)|kennwort|mot de passe/i.test(text),
  scan,
}
