/**
 * `redactAtSource`: redaction before a table materializes its rows, so no store or changelog of the
 * topology holds a source's raw text (govern still decides and redacts what it passes on).
 */
import { buildRedactor, type RedactionConfig } from '../../governance/redact/redactor.ts'
import { report, telemetryActive } from '../../observability/telemetry.ts'
import type { Decoder } from '../../topology/graph.ts'

/** Options of {@link redactAtSource}. */
export interface RedactAtSourceOptions {
  /** Detectors, actions and field rules; default every detector on, masking (docs/governance.md). */
  readonly redact?: RedactionConfig
  /** Where the pseudonymisation key is read from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Called for each row that had values removed, with the counts per detector kind and `field:<path>`. */
  readonly observe?: (redactions: Readonly<Record<string, number>>, topic: string) => void
}

/**
 * A source decoder that redacts each row before the table materializes it, so the source table's
 * store, its changelog and every join downstream hold only redacted values: every string field goes
 * through the detectors (field rules apply, see docs/governance.md). Use it for sources whose raw text
 * must not rest anywhere; govern still decides and redacts what it passes on. What it removed is
 * counted per detector (`observe`, and `ragstream_redactions_total{node="source:<topic>"}` under
 * `ragstream run`).
 *
 * @example
 * ```ts
 * builder.table<Ticket>('crm.tickets', { name: 'tickets', decode: redactAtSource(defaultTableDecoder, { redact: { detectors: { email: 'pseudonymise' } } }) })
 * ```
 */
export function redactAtSource(decode: Decoder, options: RedactAtSourceOptions = {}): Decoder {
  const redactor = buildRedactor(options.redact ?? {}, options.env ?? process.env)
  const observe = options.observe
  return (key, value, record) => {
    const decoded = decode(key, value, record)
    if (decoded === null || typeof decoded !== 'object' || decoded.value === null || typeof decoded.value !== 'object')
      return decoded
    const counts: Record<string, number> = {}
    const redacted = redactor.redactMetadata(decoded.value as Record<string, unknown>, counts)
    if (redacted === decoded.value) return decoded
    observe?.(counts, record.topic)
    if (telemetryActive()) report({ kind: 'source-redactions', topic: record.topic, redactions: counts })
    // Not `json`: those bytes are the unredacted row. `unavailable` columns still need their previous
    // value, and a CDC mark (truncate, snapshot) still says where the change sits.
    const { json: _unredacted, ...rest } = decoded
    return { ...rest, value: redacted }
  }
}
