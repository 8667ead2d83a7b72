/**
 * Recursive splitting: split on the coarsest boundary present (paragraph, then line, then sentence,
 * then word, then characters), recurse into any piece still over the limit with the next boundary,
 * and greedily pack neighbouring pieces back up to the limit, carrying the last pieces of a chunk
 * (up to `overlap`) into the next one. Separators stay attached to the piece they end, so packing
 * reproduces the original text exactly (apart from trimming each chunk).
 *
 * Packing only merges pieces of one level, so an edit inside one paragraph moves chunk boundaries
 * only in the run of small paragraphs that were packed with it; documents whose paragraphs are each
 * near the size limit (the common case for articles and tickets) re-chunk just the edited paragraph.
 */
import { measure, type SizeUnit } from './size.ts'

export interface RecursiveSplitOptions {
  /** Maximum chunk size in `unit`. */
  readonly size: number
  /** How much of the end of a chunk is repeated at the start of the next one, in `unit`; < size. */
  readonly overlap: number
  readonly unit: SizeUnit
}

/** Boundaries from coarse to fine; each splits *after* the separator so it stays with its piece. */
const BOUNDARIES: readonly RegExp[] = [
  /(?<=\n[ \t]*\n)(?=[ \t]*\S)/, // paragraph: after a blank line
  /(?<=\n)(?=[ \t]*\S)/, // line
  /(?<=[.!?…]["'”’)\]]?\s+)(?=\S)/, // sentence
  /(?<=\s)(?=\S)/, // word
]

export function recursiveSplit(text: string, options: RecursiveSplitOptions): string[] {
  const size = measure(options.unit)
  const limit = options.size
  const maxChars = options.unit === 'chars' ? limit : Math.max(1, Math.floor(limit * 4))
  const chunks: string[] = []

  const emit = (pieces: readonly string[]): void => {
    const text = pieces.join('').trim()
    if (text.length > 0) chunks.push(text)
  }

  // Greedy packing with overlap, over pieces that each fit the limit.
  const pack = (pieces: readonly string[]): void => {
    const current: string[] = []
    let total = 0
    for (const piece of pieces) {
      const n = size(piece)
      if (current.length > 0 && total + n > limit) {
        emit(current)
        while (current.length > 0 && (total > options.overlap || total + n > limit)) {
          total -= size(current[0])
          current.shift()
        }
      }
      current.push(piece)
      total += n
    }
    if (current.length > 0) emit(current)
  }

  const split = (text: string, level: number): void => {
    if (size(text) <= limit) {
      pack([text])
      return
    }
    if (level >= BOUNDARIES.length) {
      // No boundary left: hard cut (a single giant token, base64, a URL …).
      const pieces: string[] = []
      for (let i = 0; i < text.length; i += maxChars) pieces.push(text.slice(i, i + maxChars))
      pack(pieces)
      return
    }
    const pieces = text.split(BOUNDARIES[level])
    if (pieces.length === 1) {
      split(text, level + 1)
      return
    }
    let run: string[] = []
    for (const piece of pieces) {
      if (size(piece) <= limit) {
        run.push(piece)
        continue
      }
      if (run.length > 0) pack(run)
      run = []
      split(piece, level + 1)
    }
    if (run.length > 0) pack(run)
  }

  // CRLF / CR line ends would hide every paragraph and line boundary from the patterns above.
  split(text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text, 0)
  return chunks
}
