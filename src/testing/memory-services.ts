/**
 * In-memory services for the RAG tail: what the test driver uses unless a test passes real ones, so
 * a unit test of a governed, chunked, embedded topology runs with nothing running. The embedder is
 * the deterministic `hashing` one (or any provider config you pass) over an in-memory embedding
 * cache; chunk events, audit events and deletion requests are JSON (readable with `readOutput`).
 *
 * @example
 * ```ts
 * const services = new MemoryRagServices()
 * const driver = new TopologyTestDriver(topology, { services })
 * // … pipe a ticket, forget its customer …
 * assert.deepEqual(services.embeddingCache.hashes(services.embedder.model), [])
 * ```
 */
import type { TailServices } from '../config/rag-services.ts'
import { MemoryEmbeddingCache } from '../embedding/cache-memory.ts'
import { createEmbeddingProvider, DEFAULT_EMBEDDING, type ProviderEmbeddingConfig } from '../embedding/config.ts'
import { Embedder } from '../embedding/embedder.ts'
import type { AuditOutput, DeletionRequestDecoder } from '../operators/govern/options.ts'
import { jsonRequests } from '../operators/govern/deletion-requests.ts'
import { chunkEventJsonCodec } from '../serde/chunk-event-codec.ts'

export interface MemoryRagServicesOptions {
  /** Default: the built-in `hashing` embedder, 384 dimensions (deterministic, no network). */
  readonly embedding?: ProviderEmbeddingConfig
  /** Bounds the in-memory embedding cache; default unbounded. */
  readonly maxCacheEntries?: number
}

export class MemoryRagServices implements TailServices {
  readonly embeddingCache: MemoryEmbeddingCache
  readonly embedder: Embedder
  readonly chunkEvents = chunkEventJsonCodec

  constructor(options: MemoryRagServicesOptions = {}) {
    this.embeddingCache = new MemoryEmbeddingCache({ maxEntries: options.maxCacheEntries })
    this.embedder = new Embedder(createEmbeddingProvider(options.embedding ?? DEFAULT_EMBEDDING), {
      cache: this.embeddingCache,
    })
  }

  deletionRequests(_topic: string): DeletionRequestDecoder {
    return jsonRequests
  }

  auditEvents(chunkTopic: string): AuditOutput {
    return { topic: chunkTopic }
  }

  async open(): Promise<void> {}

  async close(): Promise<void> {
    await this.embedder.close()
  }
}
