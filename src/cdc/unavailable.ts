/**
 * Debezium's unchanged-TOAST placeholder. With the default `REPLICA IDENTITY`, PostgreSQL does not
 * write a large (TOASTed, ≥ ~2 KB compressed) column to the WAL when an update leaves it unchanged,
 * so the connector sends a placeholder in its place (`unavailable.value.placeholder`, default
 * `__debezium_unavailable_value`; a value starting `hex:` is hex-encoded bytes). The placeholder
 * takes the column's type:
 *   text, varchar, jsonb, xml, enum …   the placeholder string
 *   bytea                               the placeholder's bytes (base64 text in JSON, bytes in Avro)
 *   arrays                              a one-element array holding the placeholder
 * Such a column is not a value: the decoder reports it (`RowUpsert.unavailable`) and the table
 * source puts back the column's previous value from the table's own store, or dead-letters the
 * change when it has none (see docs/cdc.md).
 */

export const DEFAULT_UNAVAILABLE_PLACEHOLDER = '__debezium_unavailable_value'

/** Recognises one configured placeholder in every shape a converter can give it. */
export class UnavailableValueMatcher {
  readonly placeholder: string
  readonly #text: string
  readonly #bytes: Buffer
  readonly #base64: string

  constructor(placeholder: string = DEFAULT_UNAVAILABLE_PLACEHOLDER) {
    if (placeholder === '') throw new TypeError('unavailableValuePlaceholder must not be empty')
    this.placeholder = placeholder
    if (placeholder.startsWith('hex:')) {
      const hex = placeholder.slice(4)
      if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex))
        throw new TypeError(`unavailableValuePlaceholder "${placeholder}": "hex:" must be followed by hex octets`)
      this.#bytes = Buffer.from(hex, 'hex')
    } else this.#bytes = Buffer.from(placeholder, 'utf8')
    this.#text = this.#bytes.toString('utf8')
    this.#base64 = this.#bytes.toString('base64')
  }

  /** True when this column value is the placeholder (as text, bytes, base64 bytes or a one-element array of it). */
  matches(value: unknown): boolean {
    if (typeof value === 'string') return value === this.#text || value === this.#base64
    if (value instanceof Uint8Array) return this.#bytes.equals(value)
    if (Array.isArray(value)) return value.length === 1 && this.matches(value[0])
    return false
  }

  /** The columns of a row holding the placeholder, in row order; empty when none. */
  columns(row: Readonly<Record<string, unknown>>): string[] {
    const out: string[] = []
    for (const name of Object.keys(row)) if (this.matches(row[name])) out.push(name)
    return out
  }
}
