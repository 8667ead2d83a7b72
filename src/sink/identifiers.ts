/**
 * SQL identifiers built from configuration (schema, role, topology and version names) are the one
 * place where text from outside becomes SQL that cannot be a bound parameter. Each passes an
 * allow-list, is always quoted, and is rejected — never truncated — when longer than PostgreSQL's
 * 63-byte NAMEDATALEN limit: a silently truncated name could collide with another table or role.
 */
import { RagstreamError } from '../errors.ts'

export const MAX_IDENTIFIER_BYTES = 63

/** Schema and role names: lowercase ASCII letters, digits and `_`, starting with a letter or `_`. */
const SQL_NAME = /^[a-z_][a-z0-9_]*$/
/** Topology names and versions also allow `-` (they appear in topic names); identifiers built from them are quoted. */
const TOPOLOGY_NAME = /^[a-z][a-z0-9_-]*$/

export type IdentifierKind = 'sql-name' | 'topology-name'

function reject(field: string, value: string, reason: string): RagstreamError {
  return new RagstreamError('RS_IDENTIFIER_INVALID', `${field}: ${reason} (got ${JSON.stringify(value)})`, {
    context: { field },
    hint: 'use lowercase ASCII letters, digits and _ (topology names and versions may also use -), at most 63 bytes',
  })
}

/** Checks one configured name against the allow-list and the byte limit; returns it unchanged. */
export function checkIdentifier(field: string, value: unknown, kind: IdentifierKind = 'sql-name'): string {
  if (typeof value !== 'string' || value.length === 0) throw reject(field, String(value), 'must be a non-empty string')
  const bytes = Buffer.byteLength(value, 'utf8')
  if (bytes > MAX_IDENTIFIER_BYTES)
    throw reject(
      field,
      value,
      `is ${bytes} bytes, PostgreSQL identifiers are at most ${MAX_IDENTIFIER_BYTES} (never truncated)`,
    )
  const pattern = kind === 'sql-name' ? SQL_NAME : TOPOLOGY_NAME
  if (!pattern.test(value)) throw reject(field, value, `is not allowed: must match ${pattern.source}`)
  return value
}

/**
 * An identifier derived from configured names (e.g. `chunks_<topology>_<version>`): the parts were
 * checked already, the result must still fit in 63 bytes. `field` names the configuration that made it long.
 */
export function derivedIdentifier(field: string, value: string): string {
  const bytes = Buffer.byteLength(value, 'utf8')
  if (bytes > MAX_IDENTIFIER_BYTES)
    throw reject(
      field,
      value,
      `makes the identifier ${JSON.stringify(value)} ${bytes} bytes long, PostgreSQL allows ${MAX_IDENTIFIER_BYTES} (never truncated)`,
    )
  return value
}

/** Double-quotes an identifier that already passed `checkIdentifier` or `derivedIdentifier`. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** `"schema"."name"` */
export function qualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`
}
