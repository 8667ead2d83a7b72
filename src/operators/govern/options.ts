/**
 * The govern operator's options and the shapes it passes on: what a topology writes in
 * `table.govern({...})`, and the {@link GovernedDocument} the chunk stage receives.
 */
import type { RowLineage } from '../../cdc/table-decoder.ts'
import type { EmbeddingCache } from '../../embedding/cache.ts'
import type { AuditEventValue } from '../../governance/audit.ts'
import type { DeletionRequestValue } from '../../governance/forget/deletion-request.ts'
import type { SuppressionMode } from '../../governance/forget/suppression.ts'
import type { JoinedMetadata, PolicyDefinition } from '../../governance/policy.ts'
import type { GovernTelemetry } from '../../observability/telemetry.ts'

/** What govern reads from a row. */
export interface GovernDocumentInput {
  /** The text that will be chunked and embedded (redacted by the policy first). */
  readonly text: string
  /** Metadata indexed with each chunk (redacted by the policy first). */
  readonly metadata?: Readonly<Record<string, unknown>>
  /** Source change time; default the row's `_source.timestampMs`, else the record timestamp. */
  readonly timestampMs?: number
}

/** A governed row: only what the policy let through, redacted. The input row itself is not passed on. */
export interface GovernedDocument {
  readonly text: string
  readonly metadata: Readonly<Record<string, unknown>>
  readonly classification: string
  /** The policy output (region) the row goes to. */
  readonly region: string
  readonly tenant: string | null
  readonly subjects: readonly string[]
  /** `<policy>@<version>`. */
  readonly policy_version: string
  /** The input row's lineage, when it had one (the chunk events' lineage). */
  readonly _source?: RowLineage
}

/** Decodes deletion requests; an AvroValueCodec for schemas/deletion-request.avsc fits as is. */
export interface DeletionRequestDecoder {
  /** Called once per batch before decoding (an Avro codec is opened lazily here). */
  open?(): Promise<void>
  prepare?(values: Iterable<Buffer | null>): Promise<void>
  decode(value: Buffer | null): DeletionRequestValue | null
}

export interface ForgetOptions {
  /** The governance deletions topic (keyed by subject); co-partitioned with the source topics. */
  readonly deletionsTopic: string
  /** FOREVER (default) or BEFORE_REQUEST (only data with a source time before the request). */
  readonly mode?: SuppressionMode
  /** Default: JSON values of schemas/deletion-request.avsc's shape. */
  readonly decode?: DeletionRequestDecoder
  /** Stores keyed by the entity key (its source table, materialized joins): forgotten entities leave them. */
  readonly entityStores?: readonly string[]
  /** Stores keyed by something the subject names (its metadata row, a join's reverse index): store → key of the subject, or null. Cleaned under FOREVER only. */
  readonly subjectStores?: Readonly<Record<string, (subject: string) => string | null>>
  /** Chunk-set stores downstream, to count the chunks each request tombstones (the receipt's count). */
  readonly chunkSets?: readonly { readonly store: string; readonly entityType: string }[]
  /**
   * The embedding cache entries of a forgotten entity's chunk texts are deleted too. Govern does not
   * chunk, so `contentHashes` gives the content hashes of the chunks the chunk stage will make of a
   * governed row (the same chunker: `chunker.chunk(…).map((c) => c.contentHash)`); they are kept in
   * the subject index (sha256 of redacted text, no content) until the entity is forgotten.
   */
  readonly embeddingCache?: {
    readonly cache: EmbeddingCache
    /** The cache namespace: the Embedder's `model` (`<provider>:<model>@<dimensions>`). */
    readonly namespace: string | (() => string)
    readonly contentHashes: (document: GovernedDocument, key: string) => readonly string[]
  }
}

/** Where audit events go: a topic (the chunk topic, so the sink writes them with the deletes) and their encoding. */
export interface AuditOutput {
  readonly topic: string
  /** Default: JSON. The pgvector sink reads Avro (schemas/audit-event.avsc) from the chunk topic. */
  readonly encode?: (event: AuditEventValue) => Buffer
  /** Called once per batch before encoding (e.g. registers the Avro schema lazily). */
  readonly open?: () => Promise<void>
}

export interface GovernOptions<V> {
  /** Required: names the stores and the broadcast topic. */
  readonly name: string
  readonly policy: PolicyDefinition
  /** Recorded in audit events. */
  readonly topologyVersion?: string
  /** Where the pseudonymisation key is read from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly document: (value: V, key: string) => GovernDocumentInput
  /** The joined rows the policy decides on (e.g. the customer); default `{}`. */
  readonly joined?: (value: V, key: string) => JoinedMetadata
  readonly tenant?: (value: V, key: string) => string | null
  /**
   * Forgetting (deletion requests, suppression, store cleanup). Optional: without it the rows are
   * still denied, classified, routed, redacted and audited, but no subject can be forgotten.
   */
  readonly forget?: ForgetOptions
  /** Default: the chunk topic written downstream (`toChunks`), encoded by the services (Avro for the sink). */
  readonly audit?: AuditOutput
  /**
   * Called once per batch with what govern did (counts only), e.g. for a test or your own metrics.
   * Redaction counts are per detector kind and `field:<path>`. `ragstream run` exports the same
   * counts without it (docs/metrics.md).
   */
  readonly observe?: (batch: GovernBatchMetrics) => void
}

/** What one batch of govern did: counts, never values (the telemetry report without its node). */
export type GovernBatchMetrics = Omit<GovernTelemetry, 'kind' | 'node'>

/** The options as kept on the (untyped) graph node. */
export type GovernNodeOptions = GovernOptions<any>
