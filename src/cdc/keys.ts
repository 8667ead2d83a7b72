/**
 * Stable string form of a primary key, used as the entity key everywhere downstream (state-store
 * keys, chunk ids, output partitioning, subjects). It must not depend on how the key was serialised
 * (JSON field order, Avro vs JSON), only on the key's column values.
 *
 *   scalar key or one-column struct   → the value itself:          42, "a@b.c" → 42, a@b.c
 *   composite struct                  → columns sorted by name:    order_id=7,line_no=2 → line_no=2,order_id=7
 * In the composite form `%`, `,` and `=` inside names and values are percent-encoded, so the form
 * is unambiguous.
 */

function scalarText(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(value)
    default:
      if (value === null || value === undefined) return ''
      if (value instanceof Uint8Array)
        return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
      return canonicalJson(value)
  }
}

const escapePart = (s: string): string => s.replace(/[%,=]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)

/** Returns undefined when the key has no columns (an empty struct names no row). */
export function stableKey(key: unknown): string | undefined {
  if (key === null || key === undefined) return undefined
  if (typeof key !== 'object' || key instanceof Uint8Array || Array.isArray(key)) return scalarText(key)
  const names = Object.keys(key)
  if (names.length === 0) return undefined
  const fields = key as Record<string, unknown>
  if (names.length === 1) return scalarText(fields[names[0]])
  names.sort()
  return names.map((n) => `${escapePart(n)}=${escapePart(scalarText(fields[n]))}`).join(',')
}

/** The key struct made of these columns of a row, or undefined when any of them is missing. */
export function keyFromColumns(
  row: Readonly<Record<string, unknown>>,
  columns: readonly string[],
): Record<string, unknown> | undefined {
  const key: Record<string, unknown> = {}
  for (const column of columns) {
    const value = row[column]
    if (value === undefined || value === null) return undefined
    key[column] = value
  }
  return key
}

/** JSON with object keys sorted, so equal values always give equal text (used for hashing and keys). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortValue(value))
}

function sortValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'bigint' ? value.toString() : value
  if (Array.isArray(value)) return value.map(sortValue)
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(value).sort()) {
    const v = (value as Record<string, unknown>)[k]
    if (v !== undefined) out[k] = sortValue(v)
  }
  return out
}
