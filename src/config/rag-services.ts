/**
 * The run-time services of a RAG topology's chunk → embed → encode tail: the Embedder (its cache in
 * Redis) and the chunk-event Avro codec (its schema registered under `<chunkTopic>-value`).
 *
 * A topology file default-exports a topology built synchronously at import, and `ragstream describe`
 * imports it without any service; so nothing here connects at construction. `open()` connects, checks
 * the embedding provider and registers the schema; a topology calls it at the start of its chunk
 * stage (the batch's I/O edge), so the first batch opens the services and later batches pay nothing.
 * A failure to open throws from the stage: the batch aborts and is retried, unless the error is a
 * non-retriable configuration error (an incompatible schema, a wrong embedding dimension), which
 * stops the processor with a message naming the cause.
 *
 * @example
 * ```ts
 * const services = RagServices.fromEnv({ chunkTopic: 'rag.chunks.support-copilot' })
 * documents
 *   .stage({ name: 'chunk-embed', kind: 'chunk+embed', stores: ['chunk-sets'],
 *     processor: withServicesOpen(services, chunkEmbedStage({ ..., embedder: services.embedder })) })
 *   .to('rag.chunks.support-copilot', { encode: chunkEventEncoder(services.chunkEvents) })
 * ```
 */
import { Redis } from 'ioredis'
import {
  embeddingCacheBoundFromEnv,
  RedisEmbeddingCache,
  type EmbeddingCache,
  type EmbeddingCacheBound,
} from '../embedding/cache.ts'
import { createEmbeddingProvider, DEFAULT_EMBEDDING, type ProviderEmbeddingConfig } from '../embedding/config.ts'
import { Embedder } from '../embedding/embedder.ts'
import { auditEventOutput, deletionRequestCodec } from '../governance/forget/governance-codecs.ts'
import type { AuditOutput, DeletionRequestDecoder } from '../operators/govern/options.ts'
import { chunkEventAvroCodec } from '../serde/chunk-event-codec.ts'
import type { ChunkEvent } from '../serde/chunk-event.ts'
import { endpointsFromEnv, redactUrl } from './endpoints.ts'

/** What a chunk topology needs from its services: an embedder, an encoder for its sink, and `open()`. */
export interface ChunkServices {
  readonly embedder: Embedder
  /** Encodes a chunk event (null = tombstone); usable once `open()` resolved. */
  readonly chunkEvents: { encode(event: ChunkEvent | null): Buffer | null }
  /** Idempotent; resolves when every service is ready. */
  open(): Promise<void>
}

/**
 * What a governed chunk topology needs besides: the schema registry (Avro deletion requests and audit
 * events) and the embedding cache (forgetting a subject deletes its chunks' cached vectors).
 */
export interface GovernedChunkServices extends TailServices {
  readonly registryUrl: string
}

/**
 * Everything the declarative RAG tail (`govern`, `chunk(…).embed()`, `toChunks`) uses, so a topology
 * names no service: the framework hands these to the operators when it compiles the topology, opens
 * them before the first batch and closes them at the end. `RagServices` connects to Redis and the
 * schema registry (Avro); the test driver defaults to `MemoryRagServices` (nothing running).
 */
export interface TailServices extends ChunkServices {
  readonly embeddingCache: EmbeddingCache
  /** The decoder of deletion requests on `topic` (what `ragstream forget` writes). */
  deletionRequests(topic: string): DeletionRequestDecoder
  /** Where and how govern writes audit events: the chunk topic, so the sink writes them with the rows they explain. */
  auditEvents(chunkTopic: string): AuditOutput
  close(): Promise<void>
}

export interface RagServicesOptions {
  /** A Redis client for the embedding cache; created with `lazyConnect` so constructing connects nothing. */
  readonly redis: Redis
  readonly registryUrl: string
  /** The chunk topic; the codec registers the chunk-event schema under `<chunkTopic>-value`. */
  readonly chunkTopic: string
  /** Default: the built-in `hashing` embedder, 384 dimensions. */
  readonly embedding?: ProviderEmbeddingConfig
  /** Embedding cache key prefix; default `rs:emb` (shared by every topology using the same model, on purpose). */
  readonly cachePrefix?: string
  /** How large the embedding cache may grow per model; default `embeddingCacheBoundFromEnv()` (a million entries). */
  readonly cacheBound?: EmbeddingCacheBound
  /** Names Redis in errors (no credentials). */
  readonly redisAddress?: string
  /** The environment the provider reads (API key variable, RAGSTREAM_MODELS_DIR); default `process.env`. */
  readonly env?: NodeJS.ProcessEnv
  /** Close the Redis client in `close()`; default true. */
  readonly ownsRedis?: boolean
}

type Codec = ChunkServices['chunkEvents']

export class RagServices implements GovernedChunkServices, TailServices {
  readonly embedder: Embedder
  readonly chunkEvents: Codec
  readonly registryUrl: string
  readonly embeddingCache: EmbeddingCache
  readonly #cache: RedisEmbeddingCache
  readonly #options: RagServicesOptions
  #codec: Codec | undefined
  #opening: Promise<void> | undefined
  readonly #deletionCodecs = new Map<string, DeletionRequestDecoder>()
  readonly #auditOutputs = new Map<string, AuditOutput>()

  constructor(options: RagServicesOptions) {
    this.#options = options
    const provider = createEmbeddingProvider(options.embedding ?? DEFAULT_EMBEDDING, options.env)
    this.registryUrl = options.registryUrl
    this.embeddingCache = this.#cache = new RedisEmbeddingCache(options.redis, {
      prefix: options.cachePrefix,
      address: options.redisAddress,
      ...(options.cacheBound ?? embeddingCacheBoundFromEnv({})),
    })
    this.embedder = new Embedder(provider, { cache: this.embeddingCache })
    this.chunkEvents = {
      encode: (event) => {
        if (this.#codec === undefined)
          throw new Error(`the chunk-event codec for ${options.chunkTopic} is not open: call open() before encoding`)
        return this.#codec.encode(event)
      },
    }
  }

  /**
   * Services at the addresses of the environment (RAGSTREAM_REDIS_URL, RAGSTREAM_SCHEMA_REGISTRY_URL).
   * The Redis connection does not keep the process alive: when the runtime stops, `ragstream run`
   * exits although topology files have no close hook.
   */
  static fromEnv(options: {
    chunkTopic: string
    env?: NodeJS.ProcessEnv
    embedding?: ProviderEmbeddingConfig
    cachePrefix?: string
  }): RagServices {
    const endpoints = endpointsFromEnv(options.env)
    const redis = new Redis(endpoints.redisUrl, { lazyConnect: true })
    redis.on('connect', () => (redis as unknown as { stream?: { unref?: () => void } }).stream?.unref?.())
    // ioredis reports connection errors on the command that failed (the batch retries); without a listener it would also log them.
    redis.on('error', () => {})
    return new RagServices({
      redis,
      redisAddress: redactUrl(endpoints.redisUrl),
      registryUrl: endpoints.schemaRegistryUrl,
      chunkTopic: options.chunkTopic,
      embedding: options.embedding,
      cachePrefix: options.cachePrefix,
      cacheBound: embeddingCacheBoundFromEnv(options.env),
      ...(options.env ? { env: options.env } : {}),
    })
  }

  /** Avro deletion requests through the registry (subject `<topic>-value`), one codec per topic. */
  deletionRequests(topic: string): DeletionRequestDecoder {
    let codec = this.#deletionCodecs.get(topic)
    if (codec === undefined)
      this.#deletionCodecs.set(topic, (codec = deletionRequestCodec({ registryUrl: this.registryUrl, topic })))
    return codec
  }

  /** Avro audit events on the chunk topic (subject `<chunkTopic>-audit-value`), what the pgvector sink reads. */
  auditEvents(chunkTopic: string): AuditOutput {
    let output = this.#auditOutputs.get(chunkTopic)
    if (output === undefined)
      this.#auditOutputs.set(chunkTopic, (output = auditEventOutput({ registryUrl: this.registryUrl, chunkTopic })))
    return output
  }

  open(): Promise<void> {
    this.#opening ??= this.#open().catch((error: unknown) => {
      this.#opening = undefined // the next batch tries again
      throw error
    })
    return this.#opening
  }

  async #open(): Promise<void> {
    const [codec] = await Promise.all([
      chunkEventAvroCodec({ registryUrl: this.#options.registryUrl, topic: this.#options.chunkTopic }),
      this.embedder.verify(),
    ])
    this.#codec = codec
  }

  /**
   * Writes the embedding cache's queued vectors (at most 2 s; what is left is dropped and counted:
   * a re-embed later, never a wrong answer), releases the provider, then closes Redis. Whoever
   * created the services calls it at shutdown (`ragstream run`, the ops pipeline of demo and replay).
   */
  async close(): Promise<void> {
    await Promise.all([this.#cache.close(), this.embedder.close()])
    if (this.#options.ownsRedis === false) return
    this.#options.redis.disconnect()
  }
}

/** A stage processor that opens the services before its first batch (a failure to open retries the batch). */
export function withServicesOpen<P extends { process(items: never, context: never): unknown }>(
  services: ChunkServices,
  processor: P,
): P {
  return {
    ...processor,
    process: async (items: never, context: never) => {
      await services.open()
      return processor.process(items, context)
    },
  } as P
}
