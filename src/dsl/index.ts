// The topology DSL: what topology files import.
export { TopologyBuilder, Table, GroupedTable, Chunks, type TopologyOptions } from './builder.ts'
export type { ChunkOptions, EmbedOptions } from '../operators/chunk-embed.ts'
export type { TableOptions } from '../operators/table-source.ts'
export type { FilterOptions } from '../operators/filter.ts'
export type { PeekOptions } from '../operators/peek.ts'
export type { MapValuesOptions } from '../operators/map-values.ts'
export type { InnerJoinOptions, LeftJoinOptions } from '../operators/fk-join/index.ts'
export type { AggregateOptions, CollectOptions } from '../operators/aggregate/index.ts'
export type { Collected, CollectedItem } from '../operators/aggregate/collect.ts'
export type { StageOptions } from '../operators/stage.ts'
export type { GovernOptions, GovernedDocument } from '../operators/govern/index.ts'
export type { ToOptions } from '../operators/sink.ts'
export type {
  Decoder,
  DecodedRecord,
  DecoderPreparer,
  Encoder,
  StageContext,
  StageItem,
  StageProcessor,
  StageResult,
  StageRow,
} from '../topology/graph.ts'
export { Topology } from '../topology/topology.ts'
export { partitionForKey, partitionForString, murmur2 } from '../topology/partitioner.ts'
