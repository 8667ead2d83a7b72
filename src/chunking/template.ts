/**
 * Formatting: the text actually embedded and stored for a chunk, e.g. `"{title}\n\n{text}"` so that
 * every chunk of a long article still says what it is about. `{text}` is the chunk; any other
 * `{name}` or `{path.to.field}` is looked up in the entity's fields (row and joined metadata);
 * `{{` and `}}` are literal braces. Missing or null fields render as nothing. The template is parsed
 * once, into a list of parts the per-chunk path just concatenates.
 */

export type TemplateFields = Readonly<Record<string, unknown>>
export type FormatChunk = (text: string, fields: TemplateFields) => string

type Part = { literal: string } | { path: readonly string[] } | { text: true }

export const DEFAULT_TEMPLATE = '{text}'

/** Parses a template; returns the problems instead of throwing, for one-pass config validation. */
export function parseTemplate(template: string): { parts: Part[]; problems: string[] } {
  const parts: Part[] = []
  const problems: string[] = []
  let literal = ''
  let hasText = false
  for (let i = 0; i < template.length; i++) {
    const c = template[i]
    if ((c === '{' || c === '}') && template[i + 1] === c) {
      literal += c
      i++
      continue
    }
    if (c === '}') {
      problems.push(`unmatched "}" at ${i} (write "}}" for a literal brace)`)
      continue
    }
    if (c !== '{') {
      literal += c
      continue
    }
    const end = template.indexOf('}', i)
    const name = end < 0 ? '' : template.slice(i + 1, end).trim()
    if (end < 0 || !/^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/.test(name)) {
      problems.push(`invalid placeholder at ${i}: expected {field} or {path.to.field}`)
      if (end < 0) break
      i = end
      continue
    }
    if (literal) parts.push({ literal })
    literal = ''
    if (name === 'text') {
      parts.push({ text: true })
      hasText = true
    } else parts.push({ path: name.split('.') })
    i = end
  }
  if (literal) parts.push({ literal })
  if (!hasText) problems.push('the template must contain {text}, or the chunk itself would be lost')
  return { parts, problems }
}

export function compileTemplate(template: string): FormatChunk {
  const { parts, problems } = parseTemplate(template)
  if (problems.length > 0) throw new TypeError(`invalid chunk template: ${problems.join('; ')}`)
  if (parts.length === 1 && 'text' in parts[0]) return (text) => text
  const renderers = parts.map((part): ((text: string, fields: TemplateFields) => string) => {
    if ('literal' in part) {
      const { literal } = part
      return () => literal
    }
    if ('text' in part) return (text) => text
    const { path } = part
    return (_, fields) => render(lookup(fields, path))
  })
  return (text, fields) => {
    let out = ''
    for (const r of renderers) out += r(text, fields)
    return out
  }
}

function lookup(fields: TemplateFields, path: readonly string[]): unknown {
  let value: unknown = fields
  for (const name of path) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<string, unknown>)[name]
  }
  return value
}

function render(value: unknown): string {
  if (value === null || value === undefined) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'object')
    return JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
  return String(value)
}
