/**
 * Markup to plain text before chunking, so chunk sizes count words rather than tags and the
 * embedded text is what a reader sees. Deliberately small, dependency-free and forgiving: it is for
 * content fields (articles, ticket bodies), not a full HTML or CommonMark implementation.
 */

export type Markup = 'none' | 'markdown' | 'html'

const NAMED_ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  ndash: '–',
  mdash: '—',
  hellip: '…',
  laquo: '«',
  raquo: '»',
  ldquo: '“',
  rdquo: '”',
  lsquo: '‘',
  rsquo: '’',
  copy: '©',
  reg: '®',
  euro: '€',
}

export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, name: string) => {
    if (name[0] === '#') {
      const code = name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10)
      return Number.isFinite(code) && code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole
    }
    return NAMED_ENTITIES[name.toLowerCase()] ?? whole
  })
}

const BLOCK_TAGS =
  'p|div|section|article|header|footer|aside|main|nav|h[1-6]|ul|ol|table|tr|blockquote|pre|figure|figcaption|hr|dl|dt|dd|form|fieldset|details|summary'

export function htmlToText(html: string): string {
  return tidy(
    decodeEntities(
      html
        .replace(/<!--[\s\S]*?-->/g, '')
        .replace(/<(script|style|head|noscript|template|svg)\b[\s\S]*?<\/\1\s*>/gi, '')
        .replace(/<br\s*\/?>/gi, '\n')
        .replace(/<li\b[^>]*>/gi, '\n- ')
        .replace(/<\/?(td|th)\b[^>]*>/gi, ' ')
        .replace(new RegExp(`</?(${BLOCK_TAGS})\\b[^>]*>`, 'gi'), '\n\n')
        .replace(/<[^>]+>/g, ''),
    ),
  )
}

export function markdownToText(markdown: string): string {
  const lines: string[] = []
  let fence: string | undefined
  for (const line of markdown.replace(/\r\n?/g, '\n').split('\n')) {
    const fenceMatch = /^\s*(```+|~~~+)/.exec(line)
    if (fenceMatch) {
      fence = fence === undefined ? fenceMatch[1] : line.trim().startsWith(fence) ? undefined : fence
      continue
    }
    if (fence !== undefined) {
      lines.push(line) // code stays verbatim
      continue
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      lines.push('') // horizontal rule
      continue
    }
    if (/^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/.test(line)) continue // table separator row
    let text = line
      .replace(/^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/, '\n$1\n') // heading → its own paragraph
      .replace(/^\s*>\s?/, '') // blockquote
      .replace(/^(\s*)[*+]\s+/, '$1- ') // bullet markers
    text = text
      .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1') // image → alt text
      .replace(/\[([^\]]+)\]\([^)]*\)/g, '$1') // link → text
      .replace(/\[([^\]]+)\]\[[^\]]*\]/g, '$1') // reference link
      .replace(/<(https?:\/\/[^>]+)>/g, '$1') // autolink
      .replace(/`([^`]+)`/g, '$1') // inline code
      .replace(/(\*\*|__)(?=\S)([\s\S]*?\S)\1/g, '$2') // strong
      .replace(/(^|[^\w*])\*(?=\S)([^*]*?\S)\*(?!\w)/g, '$1$2') // emphasis *x*
      .replace(/(^|[^\w])_(?=\S)([^_]*?\S)_(?!\w)/g, '$1$2') // emphasis _x_ (not snake_case)
      .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '$1') // strikethrough
      .replace(/<[^>]+>/g, '') // inline HTML
    if (/^\s*\|.*\|\s*$/.test(text))
      text = text
        .trim()
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim())
        .join(' | ')
    lines.push(text)
  }
  return tidy(decodeEntities(lines.join('\n')))
}

/** Collapses runs of spaces, trims lines, and keeps at most one blank line between paragraphs. */
function tidy(text: string): string {
  return text
    .replace(/[ \t\u00a0]+/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim()
}

export function toPlainText(text: string, markup: Markup): string {
  switch (markup) {
    case 'none':
      return text
    case 'markdown':
      return markdownToText(text)
    case 'html':
      return htmlToText(text)
  }
}
