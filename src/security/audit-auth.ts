/**
 * Authentic deletes. A DELETION_APPLIED audit event on the chunk topic makes the sink delete every
 * row of a subject in every version table, so anyone able to write that topic could delete rows and
 * leave a genuine-looking audit row behind. The processor therefore signs each audit event it emits
 * (HMAC-SHA256 with a key the processor and the sink share, in the event's `auth` field), and the sink
 * applies a DELETION_APPLIED only when the signature verifies; a forged or unsigned one goes to
 * sink_rejects (RS_AUDIT_UNAUTHENTICATED) and deletes nothing.
 *
 * The key: `RAGSTREAM_AUDIT_KEY` (at least 32 characters), else the file `RAGSTREAM_AUDIT_KEY_FILE`,
 * else `<stack folder>/secrets/audit-hmac.key` (`RAGSTREAM_STACK_DIR`, else `.stack` in the package:
 * git-ignored), created with 32 random bytes and mode 0600 the first time anything needs it, so a
 * processor and a sink on one machine agree without setup. Elsewhere, give both the same key.
 *
 * What is signed: the event's fields in schema order, as one JSON array (counts sorted by name,
 * longs as decimal strings), so the signature does not depend on how a client decodes longs.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError } from '../errors.ts'
import { packageFile } from '../package-files.ts'

/** The fields of dev.ragstream.v1.AuditEvent that are signed (all but `auth`). */
export interface SignedAuditFields {
  readonly event_id: string
  readonly kind: string
  readonly topology: string
  readonly topology_version: string | null
  readonly request_id: string | null
  readonly subject_hash: string | null
  readonly entity_key_hash: string | null
  readonly reason: string | null
  readonly counts: Readonly<Record<string, number | bigint>>
  readonly at_ms: number | bigint
}

const MIN_KEY_CHARS = 32

/** Where the key file is: RAGSTREAM_AUDIT_KEY_FILE, else `<stack folder>/secrets/audit-hmac.key`. */
export function auditKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.RAGSTREAM_AUDIT_KEY_FILE?.trim()
  if (explicit) return resolve(explicit)
  const root = fileURLToPath(packageFile('./'))
  const stack = env.RAGSTREAM_STACK_DIR?.trim()
  const dir = stack ? (isAbsolute(stack) ? stack : resolve(root, stack)) : join(root, '.stack')
  return join(dir, 'secrets', 'audit-hmac.key')
}

/** The shared audit key (see the header); creates the key file when neither variable gives one. */
export function auditKey(env: NodeJS.ProcessEnv = process.env): Buffer {
  const inline = env.RAGSTREAM_AUDIT_KEY?.trim()
  if (inline !== undefined && inline !== '') {
    if (inline.length < MIN_KEY_CHARS)
      throw new ConfigError(
        [{ path: 'RAGSTREAM_AUDIT_KEY', message: `must be at least ${MIN_KEY_CHARS} characters` }],
        'audit key',
      )
    return Buffer.from(inline, 'utf8')
  }
  const file = auditKeyFile(env)
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    // 'wx': only the first process creates it; the others read what it wrote.
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new ConfigError(
        [{ path: 'RAGSTREAM_AUDIT_KEY_FILE', message: `cannot create ${file}: ${(error as Error).message}` }],
        'audit key',
      )
  }
  const text = readFileSync(file, 'utf8').trim()
  if (text.length < MIN_KEY_CHARS)
    throw new ConfigError(
      [{ path: 'RAGSTREAM_AUDIT_KEY_FILE', message: `${file} holds fewer than ${MIN_KEY_CHARS} characters` }],
      'audit key',
    )
  return Buffer.from(text, 'utf8')
}

function signedText(e: SignedAuditFields): string {
  const counts = Object.entries(e.counts)
    .map(([k, v]) => [k, String(v)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return JSON.stringify([
    'dev.ragstream.v1.AuditEvent',
    e.event_id,
    e.kind,
    e.topology,
    e.topology_version,
    e.request_id,
    e.subject_hash,
    e.entity_key_hash,
    e.reason,
    counts,
    String(e.at_ms),
  ])
}

/** `hmac-sha256:<hex>` over the event's signed fields. */
export function signAudit(event: SignedAuditFields, key: Buffer): string {
  return `hmac-sha256:${createHmac('sha256', key).update(signedText(event)).digest('hex')}`
}

/** True when `auth` is this event's signature under `key` (constant-time comparison). */
export function verifyAudit(event: SignedAuditFields, auth: string | null | undefined, key: Buffer): boolean {
  if (typeof auth !== 'string') return false
  const expected = Buffer.from(signAudit(event, key))
  const given = Buffer.from(auth)
  return given.length === expected.length && timingSafeEqual(given, expected)
}
