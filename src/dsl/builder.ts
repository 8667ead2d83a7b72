/**
 * The topology DSL: what users write in their topology files. Pure — no I/O; `build()` returns a frozen,
 * validated {@link Topology}.
 *
 * @example
 * ```ts
 * import { DebeziumDecoder } from '../src/cdc/debezium.ts'
 * import { cdcTableDecoder } from '../src/cdc/table-decoder.ts'
 * import { TopologyBuilder } from '../src/dsl/index.ts'
 *
 * const builder = new TopologyBuilder({ applicationId: 'support' })
 * const customers = builder.table<Customer>('crm.customers', { name: 'customers' })
 * builder
 *   .cdcTable<Ticket>('pg.public.tickets', { name: 'tickets', ...cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' })) })
 *   .filter((ticket) => ticket.status !== 'spam', { name: 'drop-spam' })
 *   .join(customers, {
 *     name: 'join-customers',
 *     type: 'left',
 *     foreignKey: (ticket) => String(ticket.customerId),
 *     joiner: (ticket, customer) => ({ ...ticket, tier: customer?.tier ?? 'unknown' }),
 *   })
 *   .to('support.documents')
 * export default builder.build()
 * ```
 */
import { aggregateNode, type AggregateOptions, type CollectOptions } from '../operators/aggregate/index.ts'
import type { Collected } from '../operators/aggregate/collect.ts'
import type { TailServices } from '../config/rag-services.ts'
import { chunkEmbedNode, type ChunkOptions, type EmbedOptions } from '../operators/chunk-embed.ts'
import { filterNode, type FilterOptions } from '../operators/filter.ts'
import { fkJoinNode, type InnerJoinOptions, type LeftJoinOptions } from '../operators/fk-join/index.ts'
import { governNode, type GovernedDocument, type GovernOptions } from '../operators/govern/index.ts'
import { mapValuesNode, type MapValuesOptions } from '../operators/map-values.ts'
import { peekNode, type PeekOptions } from '../operators/peek.ts'
import { sinkNode, type ToOptions } from '../operators/sink.ts'
import { stageNode, type StageOptions } from '../operators/stage.ts'
import { tableSourceNode, type TableOptions } from '../operators/table-source.ts'
import type { ChunkEvent } from '../serde/chunk-event.ts'
import type { CollectSpec, Decoder, TopologyNode } from '../topology/graph.ts'
import { Topology } from '../topology/topology.ts'

export interface TopologyOptions {
  /** Consumer group, transactional-id prefix and internal topic prefix. */
  readonly applicationId: string
  /** Where per-record failures go; default `<applicationId>-dead-letter`. */
  readonly deadLetterTopic?: string
  /** The version chunk events record; default `v1` (an app's deployment passes its own). */
  readonly version?: string
  /**
   * The services of the RAG tail (`govern`, `chunk(…).embed()`, `toChunks`): an app's
   * `deployment.services`. The framework opens them before the first batch and closes them; the test
   * driver replaces them with in-memory ones unless the test passes its own.
   */
  readonly services?: TailServices
}

/** Where tables append their nodes; internal to the DSL. */
interface NodeList {
  add(node: TopologyNode): void
  generateName(prefix: string): string
}

/** Builds one topology. Each method appends a node; `build()` validates everything at once. */
export class TopologyBuilder {
  readonly #options: TopologyOptions
  readonly #nodes: TopologyNode[] = []
  readonly #list: NodeList = {
    add: (node) => {
      this.#nodes.push(node)
    },
    // Kafka-style generated names, numbered by position in the graph.
    generateName: (prefix) => `${prefix}-${String(this.#nodes.length).padStart(10, '0')}`,
  }

  constructor(options: TopologyOptions) {
    this.#options = options
  }

  /**
   * A table from a compacted topic: UTF-8 keys and JSON values unless `decode` says otherwise;
   * a null value deletes the key.
   *
   * @example
   * ```ts
   * const customers = builder.table<Customer>('crm.customers', { name: 'customers' })
   * ```
   */
  table<V>(topic: string, options: TableOptions): Table<V> {
    return this.#source<V>(topic, 'compacted', options)
  }

  /**
   * A table from a CDC topic (Debezium envelopes): `decode` is required and maps each envelope to
   * `{ key, value }`, with `value: null` for deletes (`op=d`, tombstones); `prepare` runs once per
   * batch before decoding (Avro schema loads). `cdcTableDecoder` from `src/cdc` provides both.
   *
   * @example
   * ```ts
   * const tickets = builder.cdcTable<Ticket>('pg.public.tickets', {
   *   name: 'tickets',
   *   ...cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' })),
   * })
   * ```
   */
  cdcTable<V>(topic: string, options: TableOptions & { readonly decode: Decoder }): Table<V> {
    return this.#source<V>(topic, 'cdc', options)
  }

  #source<V>(topic: string, format: 'cdc' | 'compacted', options: TableOptions | undefined): Table<V> {
    const name = options?.name ?? this.#list.generateName('KTABLE-SOURCE')
    this.#list.add(
      tableSourceNode(
        name,
        options?.name !== undefined,
        topic,
        format,
        options?.decode,
        options?.prepare,
        options?.subject,
        options?.audit,
      ),
    )
    return new Table<V>(this.#list, name)
  }

  /** Validates the whole graph once; throws one ConfigError (RS_TOPOLOGY_INVALID) listing every problem. */
  build(): Topology {
    const applicationId = this.#options?.applicationId
    return new Topology({
      applicationId,
      deadLetterTopic: this.#options?.deadLetterTopic ?? `${applicationId}-dead-letter`,
      nodes: [...this.#nodes],
      ...(this.#options?.version === undefined ? {} : { version: this.#options.version }),
      ...(this.#options?.services === undefined ? {} : { services: this.#options.services }),
    })
  }
}

/**
 * A table (a changelog stream of rows by key) inside a topology being built. Methods return new
 * tables; nothing runs until the built topology is compiled by a runtime or the test driver.
 */
export class Table<V> {
  readonly #list: NodeList
  /** The node producing this table. */
  readonly name: string

  /** @internal Tables come from {@link TopologyBuilder.table}, {@link TopologyBuilder.cdcTable} and operators. */
  constructor(list: NodeList, name: string) {
    this.#list = list
    this.name = name
  }

  #named(prefix: string, name: string | undefined): [string, boolean] {
    return name === undefined ? [this.#list.generateName(prefix), false] : [name, true]
  }

  /**
   * Keeps rows the predicate accepts; a row that stops matching is deleted downstream.
   *
   * @example
   * ```ts
   * tickets.filter((ticket) => ticket.status !== 'spam')
   * ```
   */
  filter(predicate: (value: V, key: string) => boolean, options?: FilterOptions): Table<V> {
    const [name, named] = this.#named('KTABLE-FILTER', options?.name)
    this.#list.add(filterNode(name, named, this.name, predicate))
    return new Table<V>(this.#list, name)
  }

  /**
   * Runs `action` on every change (the new value; null for a delete) and passes it on unchanged.
   * A throw in `action` dead-letters that record.
   *
   * @example
   * ```ts
   * tickets.peek((ticket, key) => console.log('ticket changed', key, ticket?.status))
   * ```
   */
  peek(action: (value: V | null, key: string) => void, options?: PeekOptions): Table<V> {
    const [name, named] = this.#named('KTABLE-PEEK', options?.name)
    this.#list.add(peekNode(name, named, this.name, action))
    return new Table<V>(this.#list, name)
  }

  /**
   * Transforms each row's value (same key); returning null or undefined deletes the row downstream.
   *
   * @example
   * ```ts
   * tickets.mapValues((ticket) => ({ title: ticket.subject, body: ticket.body }))
   * ```
   */
  mapValues<O>(mapper: (value: V, key: string) => O | null | undefined, options?: MapValuesOptions): Table<O> {
    const [name, named] = this.#named('KTABLE-MAPVALUES', options?.name)
    this.#list.add(mapValuesNode(name, named, this.name, mapper))
    return new Table<O>(this.#list, name)
  }

  /**
   * Foreign-key join (KTable–KTable, KIP-213): each row points at one row of `right` by
   * `foreignKey`; the output changes when either row changes or the right row is deleted.
   * `name` is required: it names the join's subscription store and its repartition topics.
   *
   * @example
   * ```ts
   * tickets.join(customers, {
   *   name: 'join-customers',
   *   type: 'left',
   *   foreignKey: (ticket) => ticket.customerId,
   *   joiner: (ticket, customer) => ({ ...ticket, customer }),
   * })
   * ```
   */
  join<R, O>(right: Table<R>, options: InnerJoinOptions<V, R, O>): Table<O>
  join<R, O>(right: Table<R>, options: LeftJoinOptions<V, R, O>): Table<O>
  join<R, O>(right: Table<R>, options: InnerJoinOptions<V, R, O> | LeftJoinOptions<V, R, O>): Table<O> {
    const [name, named] = this.#named('KTABLE-FK-JOIN', options?.name)
    const joiner = options?.joiner as (left: unknown, right: unknown) => unknown
    this.#list.add(
      fkJoinNode(
        name,
        named,
        this.name,
        right?.name,
        options?.type ?? 'inner',
        options?.foreignKey as (left: unknown) => string,
        joiner,
      ),
    )
    return new Table<O>(this.#list, name)
  }

  /**
   * Groups the table's rows by `groupKey` (null = no group) for `aggregate`, `count` or `reduce`, with
   * each row contributing `valueMapper(row)` (default: the row). KTable semantics: a row that moves
   * to another group leaves the old one; a deleted row leaves its group; a group without rows is
   * deleted. The result is a table keyed by group key.
   *
   * @example
   * ```ts
   * const reviewCounts = reviews.groupBy((review) => review.productId).count({ name: 'review-counts' })
   * ```
   */
  groupBy<G = V>(
    groupKey: (value: V, key: string) => string | null | undefined,
    valueMapper?: (value: V, key: string) => G,
  ): GroupedTable<G> {
    return new GroupedTable<G>(
      this.#list,
      this.name,
      groupKey as (value: unknown, key: string) => string | null | undefined,
      (valueMapper ?? ((value: V) => value)) as (value: unknown, key: string) => unknown,
    )
  }

  /**
   * An async, batched stage (govern, chunk, embed): receives the batch's row changes in one call
   * and returns, per change, the rows to emit (possibly re-keyed, e.g. by chunk id, with the entity
   * as partition key) or a failure that goes to the dead-letter topic.
   *
   * @example
   * ```ts
   * documents.stage<Chunk>({
   *   name: 'chunk', kind: 'chunk', stores: ['chunk-sets'],
   *   processor: { process: async (items) => items.map((item) => splitIntoChunks(item)) },
   * })
   * ```
   */
  stage<O = unknown>(options: StageOptions<V, O>): Table<O> {
    const [name, named] = this.#named('KTABLE-STAGE', options?.name)
    this.#list.add(stageNode(name, named, this.name, options ?? ({} as StageOptions<V, O>)))
    return new Table<O>(this.#list, name)
  }

  /**
   * Governs every row before its text reaches an embedder or a topic: the policy denies, classifies,
   * routes (residency) and redacts it and names its subjects; deletion requests on
   * `forget.deletionsTopic` forget a subject everywhere, durably. The result holds only redacted text
   * and metadata; denied, suppressed and forgotten rows become deletes (the chunk stage tombstones
   * their chunks). Audit events go to `audit.topic`. See docs/governance.md.
   *
   * @example
   * ```ts
   * documents
   *   .govern({
   *     name: 'govern',
   *     policy: supportPolicy,
   *     document: (doc) => ({ text: doc.body, metadata: { title: doc.title } }),
   *     joined: (doc) => doc.customer ?? {},
   *     forget: { deletionsTopic: 'governance.deletions', entityStores: ['tickets'], chunkSets: [{ store: 'chunk-sets', entityType: 'ticket' }] },
   *     audit: { topic: 'rag.chunks.support' },
   *   })
   *   .filter((doc) => doc.region === 'eu')
   * ```
   */
  govern(options: GovernOptions<V>): Table<GovernedDocument> {
    const [name, named] = this.#named('KTABLE-GOVERN', options?.name)
    this.#list.add(governNode(name, named, this.name, options))
    return new Table<GovernedDocument>(this.#list, name)
  }

  /**
   * Chunks each row (stable chunk ids; per entity only new or changed chunks go on, vanished ones
   * become tombstones); `.embed()` then embeds them. After `govern`, the text, template fields,
   * metadata and governance columns default to the governed document's.
   *
   * @example
   * ```ts
   * governed
   *   .chunk({ entityType: 'ticket', strategy: { kind: 'recursive', size: 600 }, template: '{title}\n\n{text}' })
   *   .embed()
   *   .toChunks('rag.chunks.support')
   * ```
   */
  chunk(options: ChunkOptions<V>): Chunks<V> {
    return new Chunks<V>(this.#list, this.name, options)
  }

  /**
   * Writes chunk events (the output of `chunk(…).embed()`) to the chunk topic the pgvector sink reads:
   * upserts then tombstones, keyed by chunk id, partitioned by entity, encoded by the services'
   * chunk-event codec (Avro through the schema registry; JSON in the test driver).
   *
   * @example
   * ```ts
   * chunks.embed().toChunks(deployment.chunkTopic)
   * ```
   */
  toChunks(topic: string, options?: { readonly name?: string }): void {
    const name = options?.name ?? 'chunk-events'
    this.#list.add(sinkNode(name, true, this.name, topic, undefined, true))
  }

  /**
   * Writes every change to `topic`: upserts as JSON, deletes as tombstones, partitioned by key with
   * Kafka's default partitioner.
   *
   * @example
   * ```ts
   * documents.to('support.documents')
   * ```
   */
  to(topic: string, options?: ToOptions): void {
    const [name, named] = this.#named('KTABLE-SINK', options?.name)
    this.#list.add(sinkNode(name, named, this.name, topic, options?.encode))
  }
}

/** A table grouped by `groupBy`: aggregate it into a table keyed by group key. */
export class GroupedTable<G> {
  readonly #list: NodeList
  readonly #input: string
  readonly #groupKey: (value: unknown, key: string) => string | null | undefined
  readonly #valueMapper: (value: unknown, key: string) => unknown

  /** @internal Made by {@link Table.groupBy}. */
  constructor(
    list: NodeList,
    input: string,
    groupKey: (value: unknown, key: string) => string | null | undefined,
    valueMapper: (value: unknown, key: string) => unknown,
  ) {
    this.#list = list
    this.#input = input
    this.#groupKey = groupKey
    this.#valueMapper = valueMapper
  }

  /**
   * Folds each group's values: a row's value is added with `adder` when it enters the group and
   * subtracted with `subtractor` when it leaves or changes (subtract old, then add new); a group
   * starts from `initializer()`. `name` is required: it names the store, its changelog and the
   * group-by repartition topic.
   *
   * @example
   * ```ts
   * reviews
   *   .groupBy((review) => review.productId, (review) => review.stars)
   *   .aggregate(() => ({ sum: 0, n: 0 }), (a, stars) => ({ sum: a.sum + stars, n: a.n + 1 }),
   *     (a, stars) => ({ sum: a.sum - stars, n: a.n - 1 }), { name: 'stars-per-product' })
   * ```
   */
  aggregate<A>(
    initializer: () => A,
    adder: (aggregate: A, value: G, groupKey: string) => A,
    subtractor: (aggregate: A, value: G, groupKey: string) => A,
    options: AggregateOptions,
  ): Table<A> {
    return this.#add<A>('aggregate', options, initializer, adder, subtractor)
  }

  /**
   * The number of rows per group.
   *
   * @example
   * ```ts
   * reviews.groupBy((review) => review.productId).count({ name: 'review-counts' })
   * ```
   */
  count(options: AggregateOptions): Table<number> {
    return this.#add<number>(
      'count',
      options,
      () => 0,
      (n: number) => n + 1,
      (n: number) => n - 1,
    )
  }

  /**
   * Combines each group's values with `adder` (the first value is the start), and takes a leaving
   * value out with `subtractor`.
   *
   * @example
   * ```ts
   * orders.groupBy((o) => o.customerId, (o) => o.total).reduce((a, b) => a + b, (a, b) => a - b, { name: 'spend' })
   * ```
   */
  reduce(
    adder: (aggregate: G, value: G) => G,
    subtractor: (aggregate: G, value: G) => G,
    options: AggregateOptions,
  ): Table<G> {
    return this.#add<G>(
      'reduce',
      options,
      () => null as G,
      (aggregate: G | null, value: G) => (aggregate === null ? value : adder(aggregate, value)),
      subtractor,
    )
  }

  /**
   * The children of each group as an ordered, bounded list — the document of a parent with its
   * children: `{ items: [{ key, value }], total, truncated }`, the first `limit` children by `orderBy`
   * (ties: child key). Each child is its own store entry, so a change to one child of a parent with
   * thousands costs a constant number of store writes.
   *
   * @example
   * ```ts
   * reviews
   *   .groupBy((review) => review.productId, (review) => ({ text: review.text, stars: review.stars }))
   *   .collect({ name: 'reviews-per-product', orderBy: (review) => review.stars, descending: true, limit: 20 })
   * ```
   */
  collect(options: CollectOptions<G>): Table<Collected<G>> {
    return this.#add<Collected<G>>(
      'collect',
      options,
      () => null,
      (_a: unknown, value: G) => value,
      () => null,
      {
        ...(options?.orderBy === undefined ? {} : { orderBy: options.orderBy }),
        descending: options?.descending === true,
        limit: options?.limit,
      },
    )
  }

  #add<A>(
    operation: string,
    options: AggregateOptions,
    initializer: () => unknown,
    adder: (aggregate: any, value: any, groupKey: string) => unknown,
    subtractor: (aggregate: any, value: any, groupKey: string) => unknown,
    collect?: CollectSpec,
  ): Table<A> {
    const name = options?.name ?? this.#list.generateName('KTABLE-AGGREGATE')
    this.#list.add(
      aggregateNode(name, options?.name !== undefined, this.#input, {
        groupKey: this.#groupKey,
        valueMapper: this.#valueMapper,
        initializer,
        adder,
        subtractor,
        operation,
        ...(collect === undefined ? {} : { collect }),
      }),
    )
    return new Table<A>(this.#list, name)
  }
}

/** Rows to be chunked (`table.chunk(…)`); `.embed()` adds the chunk → diff → embed step. */
export class Chunks<V> {
  readonly #list: NodeList
  readonly #input: string
  readonly #options: ChunkOptions<V>

  /** @internal Made by {@link Table.chunk}. */
  constructor(list: NodeList, input: string, options: ChunkOptions<V>) {
    this.#list = list
    this.#input = input
    this.#options = options
  }

  /**
   * Embeds the new or changed chunks of each batch in one call, with the services' embedder (its
   * cache skips texts already embedded), or `{ embedder }` given here.
   *
   * @example
   * ```ts
   * governed.chunk({ entityType: 'ticket' }).embed()
   * ```
   */
  embed(options: EmbedOptions = {}): Table<ChunkEvent> {
    const name = this.#options?.name ?? 'chunk-embed'
    this.#list.add(chunkEmbedNode(name, this.#input, this.#options, options))
    return new Table<ChunkEvent>(this.#list, name)
  }
}
