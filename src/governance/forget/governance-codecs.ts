/**
 * Avro codecs of the governance records (Confluent wire format through the schema registry), opened
 * lazily so a topology file can build them synchronously and `describe` needs no registry. The one
 * part of src/governance that does I/O; the govern operator and `ragstream forget` use it.
 *
 *   deletion request  schemas/deletion-request.avsc  on the deletions topic, subject `<deletions topic>-value`
 *   audit event       schemas/audit-event.avsc       on the chunk topic (the sink writes it as an audit
 *                                                     row with the deletes), subject `<chunk topic>-audit-value`
 */
import { readFileSync } from 'node:fs'
import { AvroValueCodec } from '../../serde/avro-codec.ts'
import type { AuditEventValue } from '../audit.ts'
import { auditKey, signAudit } from '../../security/audit-auth.ts'
import type { DeletionRequestValue } from './deletion-request.ts'
import { packageFile } from '../../package-files.ts'

function schema(file: string): Readonly<Record<string, unknown>> {
  return JSON.parse(readFileSync(packageFile(`schemas/${file}`), 'utf8')) as Record<string, unknown>
}

export const DELETION_REQUEST_SCHEMA = schema('deletion-request.avsc')
export const AUDIT_EVENT_SCHEMA = schema('audit-event.avsc')

class LazyCodec<T> {
  readonly #open: () => Promise<AvroValueCodec<T>>
  #codec: AvroValueCodec<T> | undefined
  #opening: Promise<AvroValueCodec<T>> | undefined

  constructor(open: () => Promise<AvroValueCodec<T>>) {
    this.#open = open
  }

  /** Registers the schema once; a failed open is retried by the next call. */
  async open(): Promise<void> {
    if (this.#codec !== undefined) return
    this.#opening ??= this.#open().finally(() => {
      this.#opening = undefined
    })
    this.#codec = await this.#opening
  }

  get codec(): AvroValueCodec<T> {
    if (this.#codec === undefined) throw new Error('the governance codec is used before open() resolved')
    return this.#codec
  }
}

/** Deletion requests: `encode` for `ragstream forget`, `prepare`/`decode` for the govern operator (`forget.decode`). */
export function deletionRequestCodec(options: { registryUrl: string; topic: string }) {
  const lazy = new LazyCodec(() =>
    AvroValueCodec.forTopic<DeletionRequestValue>({
      registryUrl: options.registryUrl,
      topic: options.topic,
      schema: DELETION_REQUEST_SCHEMA,
    }),
  )
  return {
    open: () => lazy.open(),
    encode: (request: DeletionRequestValue): Buffer => lazy.codec.encode(request) as Buffer,
    prepare: (values: Iterable<Buffer | null>): Promise<void> => lazy.codec.prepare(values),
    decode: (value: Buffer | null): DeletionRequestValue | null => lazy.codec.decode(value),
  }
}

/**
 * The govern operator's `audit` output for the pgvector sink: Avro audit events on the chunk topic,
 * each signed with the audit key (`signingKey`, default `auditKey()`: src/security/audit-auth.ts), so
 * the sink can tell the processor's DELETION_APPLIED from one anybody wrote to the topic.
 */
export function auditEventOutput(options: { registryUrl: string; chunkTopic: string; signingKey?: Buffer }) {
  let key = options.signingKey
  const lazy = new LazyCodec(() => {
    key ??= auditKey()
    return AvroValueCodec.forTopic<SignedAuditEvent>({
      registryUrl: options.registryUrl,
      topic: `${options.chunkTopic}-audit`,
      schema: AUDIT_EVENT_SCHEMA,
    })
  })
  return {
    topic: options.chunkTopic,
    open: () => lazy.open(),
    encode: (event: AuditEventValue): Buffer => {
      const signed: SignedAuditEvent = { ...event, auth: signAudit(event, key!) }
      return lazy.codec.encode(signed) as Buffer
    },
  }
}

type SignedAuditEvent = AuditEventValue & { readonly auth: string }
