/**
 * ragstream's public API. Topologies import the DSL from here; unit tests import the test driver;
 * everything else (runtime internals, sink internals) is reached through the CLI.
 */

// Topologies as code.
export { TopologyBuilder, Table, Chunks, Topology, partitionForKey, partitionForString, murmur2 } from './dsl/index.ts'
export type {
  TopologyOptions,
  TableOptions,
  FilterOptions,
  MapValuesOptions,
  InnerJoinOptions,
  LeftJoinOptions,
  StageOptions,
  ToOptions,
  Decoder,
  DecodedRecord,
  Encoder,
  StageContext,
  StageItem,
  StageProcessor,
  StageResult,
  StageRow,
  ChunkOptions,
  EmbedOptions,
  AggregateOptions,
  CollectOptions,
  Collected,
  CollectedItem,
} from './dsl/index.ts'

// Apps: what a topology file default-exports, so every command can deploy its versions.
export { defineApp, isApp } from './app/app.ts'
export type { App, AppOptions, AppDeployment, AppServicesOptions, DeployOptions, SourcePrefix } from './app/app.ts'
export { versionNames, VERSION_PATTERN, APP_NAME_PATTERN } from './app/naming.ts'
export type { VersionNames, VersionNamesInput } from './app/naming.ts'

// The test driver for users' unit tests.
export { TopologyTestDriver, DEAD_LETTER_HEADERS, MemoryRagServices } from './testing/index.ts'
export type {
  TestDriverOptions,
  TestInputRecord,
  TestOutputRecord,
  TestRecordOrigin,
  MemoryRagServicesOptions,
} from './testing/index.ts'

// Components: CDC decoding, chunking, embedding, serde, state.
export { DebeziumDecoder } from './cdc/debezium.ts'
export { UpsertDecoder } from './cdc/upsert.ts'
export { cdcTableDecoder, LINEAGE_FIELD } from './cdc/table-decoder.ts'
export type { RowLineage } from './cdc/table-decoder.ts'
export { stableKey } from './cdc/keys.ts'
export { createChunker } from './chunking/chunker.ts'
export type { Chunker, ChunkerConfig, ChunkingStrategy, StrategyConfig } from './chunking/chunker.ts'
export { markdownToText } from './chunking/markup.ts'
export { recursiveSplit } from './chunking/recursive-split.ts'
export { chunkEmbedStage, chunkEventEncoder } from './chunking/chunk-embed-stage.ts'
export { createEmbeddingProvider, providerForModel } from './embedding/config.ts'
export { LocalProvider } from './embedding/local.ts'
export { LOCAL_MODELS } from './embedding/models.ts'
export { Embedder } from './embedding/embedder.ts'
export { RedisEmbeddingCache } from './embedding/cache.ts'
export { MemoryEmbeddingCache } from './embedding/cache-memory.ts'
export type { EmbeddingCache } from './embedding/cache.ts'
export { chunkEventAvroCodec, chunkEventJsonCodec } from './serde/chunk-event-codec.ts'
export { RagServices, withServicesOpen } from './config/rag-services.ts'
export type { ChunkServices, GovernedChunkServices, TailServices } from './config/rag-services.ts'
export type { ChunkEvent } from './serde/chunk-event.ts'
export { MemoryStateStore } from './state/memory-store.ts'

// Governance policies, the govern stage's helpers and the governance codecs.
export {
  definePolicy,
  compilePolicy,
  buildRedactor,
  redactText,
  DEFAULT_CLASSIFICATION_LABELS,
} from './governance/index.ts'
export type {
  RedactionConfig,
  RedactionContext,
  RedactionCounts,
  Redactor,
  JoinedKind,
  JoinedValue,
} from './governance/index.ts'
export { redactAtSource } from './operators/govern/index.ts'
export type {
  GovernOptions,
  GovernedDocument,
  GovernBatchMetrics,
  ForgetOptions,
  AuditOutput,
  DeletionRequestDecoder,
  RedactAtSourceOptions,
} from './operators/govern/index.ts'
export { auditEventOutput, deletionRequestCodec } from './governance/forget/governance-codecs.ts'

// Errors: codes are a documented contract (docs/errors.md).
export { RagstreamError, ConfigError, ServiceUnavailableError, ERROR_CODES, isRetriable } from './errors.ts'
export type { ErrorCode, ErrorContext, Problem } from './errors.ts'
