/**
 * Text from the index (chunk content, entity keys, anything a source system wrote) is data, not
 * terminal input. Before it is printed for a person, control characters (which clear the screen,
 * set the window title, move the cursor or hide text: C0, DEL, C1 including CSI/OSC introducers) and
 * bidirectional overrides (which make `abc` display as `cba` and hide what a line really says) are
 * replaced by U+FFFD, so the tampering is visible and nothing is executed.
 */

// C0 except tab and newline, DEL, C1; bidi embeddings/overrides/isolates and marks; line/paragraph separators.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const UNSAFE_OR_NEWLINE =
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/** `text` safe to print: tab and newline stay (or newline too becomes U+FFFD with `singleLine`). */
export function terminalSafe(text: string, options: { readonly singleLine?: boolean } = {}): string {
  return text.replace(options.singleLine ? UNSAFE_OR_NEWLINE : UNSAFE, '\uFFFD')
}

// The same characters as UNSAFE that JSON.stringify leaves raw (it escapes C0 already): DEL, C1, bidi, separators.
const JSON_RAW = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/**
 * JSON text safe to print: the characters `terminalSafe` replaces are written as `\uXXXX` escapes
 * instead, which is the same JSON (lossless: `JSON.parse` gives the original strings back). Outside
 * strings JSON has none of them, so escaping them anywhere in the text is sound.
 */
export function jsonSafe(json: string): string {
  return json.replace(JSON_RAW, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
