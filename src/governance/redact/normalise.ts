/**
 * The normalised view the detectors scan, and the map from its positions back to the original text.
 *
 * People write the same value in many shapes: `123–45–6789` with en dashes, `+44 20 7946 0958` with
 * non-breaking spaces, `%2B44%2020…` in a URL, a card number wrapped over two lines. Rather than
 * teaching every detector every shape, the text is rewritten once into a canonical view:
 *
 * - Unicode dashes (U+2010–U+2015, U+2212, U+FE58, U+FE63, U+FF0D) become `-`;
 * - Unicode spaces (U+00A0, U+2000–U+200A, U+202F, U+205F, U+3000) become ` `;
 * - invisible characters (zero-width space/joiners U+200B–U+200D, U+2060, U+FEFF, soft hyphen
 *   U+00AD) are removed;
 * - `%XX` percent-escapes of printable ASCII are decoded (`%40` → `@`, `%2B` → `+`, `%20` → ` `);
 * - a run of white space holding a line break becomes one space, so a value wrapped between its
 *   groups is one value again;
 * - fullwidth digits and `＠` become ASCII.
 *
 * A second, *joined* view also removes a single line break (with the spaces around it) that splits
 * a token (`AKIA…\n…`, `anna@\nexample.com`). It is built only when the text has such a break, and a
 * finding in it counts only when it crosses a removed break (the redactor's rule), because joining
 * every wrapped line also glues the next line's first word onto a value.
 *
 * Findings are mapped back through the view's segments, so the whole original value (with its
 * escapes, dashes and line breaks) is masked, never part of it. A text that needs none of this (plain
 * ASCII without `%` and line breaks) is its own view and costs one scan of its characters.
 */

/**
 * A view of a text: `text` is what detectors scan. Segments describe how it was made: view
 * positions [vStart[k], vStart[k+1]) come from original [oStart[k], oEnd[k]); an identity segment
 * maps character by character, a replacement segment is one view character for the whole range.
 */
export class TextView {
  text = ''
  /** Number of segments; 0 means the view is the original text itself. */
  segments = 0
  vStart: Int32Array = new Int32Array(64)
  oStart: Int32Array = new Int32Array(64)
  oEnd: Int32Array = new Int32Array(64)
  identity: Uint8Array = new Uint8Array(64)
  /** View positions right after a removed line break (joined view only), ascending. */
  joins: number[] = []
  /** Whether the text has a line break between two token characters (so a joined view differs). */
  joinable = false

  /** The original position of view position `v` (a span's start). */
  originalStart(v: number): number {
    if (this.segments === 0) return v
    const k = this.#segmentOf(v)
    return this.identity[k] === 1 ? this.oStart[k] + (v - this.vStart[k]) : this.oStart[k]
  }

  /** The original end (exclusive) of a span ending (exclusive) at view position `v`. */
  originalEnd(v: number): number {
    if (this.segments === 0) return v
    const k = this.#segmentOf(v - 1)
    return this.identity[k] === 1 ? this.oStart[k] + (v - this.vStart[k]) : this.oEnd[k]
  }

  /** Whether view span [start, end) crosses a removed line break. */
  crossesJoin(start: number, end: number): boolean {
    // The first join after `start` (binary search: a text can hold many joins and many findings).
    const joins = this.joins
    let lo = 0
    let hi = joins.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (joins[mid] <= start) lo = mid + 1
      else hi = mid
    }
    return lo < joins.length && joins[lo] < end
  }

  #segmentOf(v: number): number {
    let lo = 0
    let hi = this.segments - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (this.vStart[mid] <= v) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  #push(vStart: number, oStart: number, oEnd: number, identity: boolean): void {
    const k = this.segments
    if (k === this.vStart.length) {
      const grow = <T extends Int32Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2)
        b.set(a)
        return b
      }
      this.vStart = grow(this.vStart)
      this.oStart = grow(this.oStart)
      this.oEnd = grow(this.oEnd)
      this.identity = grow(this.identity)
    }
    this.vStart[k] = vStart
    this.oStart[k] = oStart
    this.oEnd[k] = oEnd
    this.identity[k] = identity ? 1 : 0
    this.segments = k + 1
  }

  /**
   * Rebuilds this view for `original`. With `join`, a single line break between two token
   * characters is removed instead of becoming a space. Returns this.
   */
  build(original: string, join: boolean): this {
    this.segments = 0
    this.joins.length = 0
    this.joinable = false
    const n = original.length
    if (!needsView(original)) {
      this.text = original
      return this
    }
    // One-for-one replacements (a dash, a space, a single line break) keep positions, so they stay
    // inside an identity segment; only edits that change the length (an escape, a removed character,
    // a collapsed white-space run) cut segments. Most tickets then need no segment at all.
    let out = ''
    let copied = 0 // original position up to which `out` holds the text
    let identityFrom = 0 // original start of the open identity segment
    let identityV = 0 // its view start
    const sub = (i: number, by: string): void => {
      out += original.slice(copied, i) + by
      copied = i + 1
    }
    let edited = false
    const edit = (i: number, end: number, by: string): void => {
      edited = true
      out += original.slice(copied, i)
      if (i > identityFrom) this.#push(identityV, identityFrom, i, true)
      let v = identityV + (i - identityFrom)
      if (by.length === 1) {
        this.#push(v, i, end, false)
        out += by
        v++
      }
      copied = end
      identityFrom = end
      identityV = v
    }
    let i = 0
    while (i < n) {
      const c = original.charCodeAt(i)
      if (c < 128 && c !== 37 && c !== 10 && c !== 13 && c !== 9 && c !== 32) {
        i++
        continue
      }
      if (c === 37 /* % */) {
        const code = i + 2 < n ? hexByte(original.charCodeAt(i + 1), original.charCodeAt(i + 2)) : -1
        if (code >= 0x20 && code <= 0x7e) {
          edit(i, i + 3, String.fromCharCode(code))
          i += 3
        } else i++
        continue
      }
      if (isSpace(c)) {
        let end = i
        let breaks = 0
        while (end < n) {
          const d = original.charCodeAt(end)
          if (d === 10) breaks++
          else if (d === 13) {
            if (original.charCodeAt(end + 1) !== 10) breaks++
          } else if (!isSpace(d)) break
          end++
        }
        if (breaks > 0) {
          const before = i > copied ? mappedChar(original.charCodeAt(i - 1)) : lastOf(out)
          const after = end < n ? mappedChar(original.charCodeAt(end)) : -1
          const continues = joinsLeft(before) && joinsRight(after)
          if (continues && breaks === 1) this.joinable = true
          if (join && continues && breaks === 1) {
            edit(i, end, '')
            this.joins.push(identityV)
            i = end
            continue
          }
          // A run that may sit inside a value (`4111 1111\n    1111 …`) becomes one space. Elsewhere
          // (after punctuation, before a quote) no value continues across it: it is left as it is,
          // so most line breaks of a ticket cost nothing.
          if (!continues) {
            i = end
            continue
          }
          if (end - i > 1) {
            edit(i, end, ' ')
            i = end
            continue
          }
        }
        for (let j = i; j < end; j++) if (original.charCodeAt(j) !== 32) sub(j, ' ')
        i = end
        continue
      }
      const mapped = mapChar(c)
      if (mapped === 0) edit(i, i + 1, '')
      else if (mapped > 0) sub(i, String.fromCharCode(mapped))
      i++
    }
    if (copied === 0) {
      this.text = original
      return this
    }
    if (edited && n > identityFrom) this.#push(identityV, identityFrom, n, true)
    this.text = flat(out + original.slice(copied))
    return this
  }
}

/**
 * The view is built by concatenation, which V8 keeps as a rope; every detector then reads it
 * character by character, and reads from a rope are several times slower. Converting it to a number
 * makes V8 flatten it once, in place.
 */
function flat(text: string): string {
  // eslint-disable-next-line @typescript-eslint/no-unused-expressions
  ;+text
  return text
}

/** Whether the text has anything the view rewrites: non-ASCII, `%`, or a line break. */
function needsView(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 128 || c === 37 || c === 10 || c === 13) return true
  }
  return false
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 65 && c <= 70) return c - 55
  if (c >= 97 && c <= 102) return c - 87
  return -1
}

function hexByte(a: number, b: number): number {
  const h = hexDigit(a)
  const l = hexDigit(b)
  return h < 0 || l < 0 ? -1 : h * 16 + l
}

function isSpace(c: number): boolean {
  return (
    c === 32 ||
    c === 9 ||
    c === 10 ||
    c === 13 ||
    c === 0xa0 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  )
}

/**
 * The ASCII replacement of a non-ASCII character: a code, 0 to remove it, -1 to keep it. (Spaces are
 * handled with the runs they belong to.)
 */
function mapChar(c: number): number {
  if (c < 128) return -1
  if ((c >= 0x2010 && c <= 0x2015) || c === 0x2212 || c === 0xfe58 || c === 0xfe63 || c === 0xff0d) return 45
  if ((c >= 0x200b && c <= 0x200d) || c === 0x2060 || c === 0xfeff || c === 0xad) return 0
  if (c >= 0xff10 && c <= 0xff19) return c - 0xff10 + 48
  if (c === 0xff20) return 64
  return -1
}

function mappedChar(c: number): number {
  const m = mapChar(c)
  return m > 0 ? m : c
}

function lastOf(out: string): number {
  return out.length > 0 ? out.charCodeAt(out.length - 1) : -1
}

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
}

// A value can be split after a letter, digit, `@`, or a base64/URL character, and before a letter,
// digit, `@` or `.`. Sentence punctuation (`,` `.` `:`) before a break ends a line, not a value.
function joinsLeft(c: number): boolean {
  return isAlnum(c) || c === 64 || c === 43 || c === 47 || c === 61 || c === 45 || c === 95 || c === 37
}

function joinsRight(c: number): boolean {
  return isAlnum(c) || c === 64 || c === 46 || c === 37
}
