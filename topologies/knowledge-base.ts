// knowledge-base — a second shape: published help-centre articles (Markdown, from a compacted upsert
// topic) joined (inner) to their category (Debezium CDC), governed (PII redacted, classified by the
// category; no data subject, so no forget), chunked one Markdown section per chunk, embedded and
// written as Avro chunk events to rag.chunks.knowledge-base, with the audit events beside them.
//
//   <prefix>.articles ──► articles (redacted as decoded) ──► published ── inner FK join ──► categories ◄── <prefix>.public.categories
//                                          ▼
//                                       govern: classify by category, redact text and metadata, audit
//                                          ▼
//                                       chunk by heading → diff → embed ──► rag.chunks.knowledge-base
//
// Topic prefix: RAGSTREAM_KB_PREFIX for `ragstream run`/`describe` (default `kb`), or the
// `knowledgeBase({ prefix, ... })` factory in tests.
import { DebeziumDecoder } from '../src/cdc/debezium.ts'
import type { RowLineage } from '../src/cdc/table-decoder.ts'
import { cdcTableDecoder } from '../src/cdc/table-decoder.ts'
import { UpsertDecoder } from '../src/cdc/upsert.ts'
import { chunkEmbedStage, chunkEventEncoder } from '../src/chunking/chunk-embed-stage.ts'
import { createChunker, type ChunkingStrategy } from '../src/chunking/chunker.ts'
import { markdownToText } from '../src/chunking/markup.ts'
import { recursiveSplit } from '../src/chunking/recursive-split.ts'
import { withServicesOpen, type GovernedChunkServices } from '../src/config/rag-services.ts'
import { TopologyBuilder } from '../src/dsl/index.ts'
import { defineApp } from '../src/index.ts'
import { DEFAULT_CLASSIFICATION_LABELS } from '../src/governance/classification.ts'
import { auditEventOutput } from '../src/governance/forget/governance-codecs.ts'
import { definePolicy } from '../src/governance/policy.ts'
import { redactAtSource, type GovernedDocument } from '../src/operators/govern/index.ts'
import type { Topology } from '../src/topology/topology.ts'

/** A row of `<prefix>.articles` (plain JSON upserts keyed by slug). */
export interface Article {
  readonly slug: string
  readonly category_id: number
  readonly title: string
  /** Markdown. */
  readonly body: string
  readonly published: boolean
  readonly _source: RowLineage
}

/** A row of `<prefix>.public.categories`. */
export interface Category {
  readonly id: number
  readonly name: string
  readonly classification: string
}

export interface KnowledgeBaseOptions {
  /** Topic prefix: `<prefix>.articles`, `<prefix>.public.categories`. */
  readonly prefix: string
  /** Default `knowledge-base`. */
  readonly applicationId?: string
  /** Default `v1`. */
  readonly version?: string
  /** Default `rag.chunks.knowledge-base`. */
  readonly chunkTopic?: string
  /** Embedder, chunk-event codec and the registry (Avro audit events); opened by the first batch. */
  readonly services: GovernedChunkServices
}

export const KB_CHUNK_TOPIC = 'rag.chunks.knowledge-base'

/**
 * The knowledge-base policy, versioned: every chunk records `knowledge-base@1`. The label is the
 * category's (an unknown label fails closed to `restricted`); every PII detector on, masking, over
 * the article text and its title. One output, no subjects: an article is about no one, so there is
 * nothing to forget (`govern` without `forget`).
 */
export const knowledgeBasePolicy = definePolicy({
  name: 'knowledge-base',
  version: '1',
  classify: (_article, category) =>
    (DEFAULT_CLASSIFICATION_LABELS as readonly unknown[]).includes(category.classification)
      ? (category.classification as string)
      : 'restricted',
})

/**
 * One chunk per Markdown section (a heading and what follows it, up to the next heading outside a
 * code fence), as plain text; a section longer than `size` characters is split recursively. An edit
 * inside one section re-chunks that section only.
 */
export function markdownSections(size: number): ChunkingStrategy {
  return {
    id: `markdown-sections(size=${size})`,
    split(markdown) {
      const sections: string[] = []
      let current: string[] = []
      let fenced = false
      for (const line of markdown.replace(/\r\n?/g, '\n').split('\n')) {
        if (/^\s*(```|~~~)/.test(line)) fenced = !fenced
        if (!fenced && /^\s{0,3}#{1,6}\s/.test(line) && current.some((l) => l.trim() !== '')) {
          sections.push(current.join('\n'))
          current = []
        }
        current.push(line)
      }
      sections.push(current.join('\n'))
      return sections
        .map((section) => markdownToText(section))
        .filter((text) => text !== '')
        .flatMap((text) => (text.length <= size ? [text] : recursiveSplit(text, { size, overlap: 0, unit: 'chars' })))
    },
  }
}

/**
 * Builds knowledge-base over the topics of `prefix`.
 *
 * @example
 * ```ts
 * const topology = knowledgeBase({ prefix: 'helpcenter', services: RagServices.fromEnv({ chunkTopic: KB_CHUNK_TOPIC }) })
 * ```
 */
export function knowledgeBase(options: KnowledgeBaseOptions): Topology {
  const { prefix, services } = options
  const applicationId = options.applicationId ?? 'knowledge-base'
  const version = options.version ?? 'v1'
  const chunkTopic = options.chunkTopic ?? KB_CHUNK_TOPIC
  const builder = new TopologyBuilder({ applicationId })

  // ── sources: a compacted upsert topic of articles and a CDC table of categories (JSON: `decode` only)
  //    Articles are redacted as they are decoded, so neither their store nor its changelog holds raw PII.
  const articles = builder.table<Article>(`${prefix}.articles`, {
    name: 'articles',
    decode: redactAtSource(cdcTableDecoder(new UpsertDecoder({ valueFormat: 'json' })).decode),
  })
  const categories = builder.cdcTable<Category>(`${prefix}.public.categories`, {
    name: 'categories',
    decode: cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }), { lineageField: false }).decode,
  })

  articles
    // ── drafts are not indexed; unpublishing an article removes its chunks
    .filter((article) => article.published, { name: 'published' })
    // ── inner join: an article without a (known) category is not indexed until its category arrives
    .join(categories, {
      name: 'join-categories',
      foreignKey: (article) => String(article.category_id),
      joiner: (article, category) => ({ ...article, category: category.name, classification: category.classification }),
    })
    // ── govern: only the redacted text and metadata go on, labelled with the category's classification;
    //    a category's reclassification reaches every article in it through the join (RECLASSIFIED).
    //    Audit events ride the chunk topic, so the sink writes them with the rows they explain.
    .govern({
      name: 'govern',
      policy: knowledgeBasePolicy,
      topologyVersion: version,
      document: (article) => ({ text: article.body, metadata: { title: article.title, category: article.category } }),
      joined: (article) => ({ category: article.category, classification: article.classification }),
      audit: auditEventOutput({ registryUrl: services.registryUrl, chunkTopic }),
    })
    .stage({
      name: 'chunk-embed',
      kind: 'chunk+embed',
      stores: ['chunk-sets'],
      processor: withServicesOpen(
        services,
        chunkEmbedStage<GovernedDocument>({
          topology: applicationId,
          version,
          entityType: 'article',
          store: 'chunk-sets',
          chunker: createChunker({ strategy: markdownSections(1200), template: '{title} ({category})\n\n{text}' }),
          embedder: services.embedder,
          text: (doc) => doc.text,
          fields: (doc) => doc.metadata,
          metadata: (doc) => doc.metadata,
          governance: (doc) => ({ classification: doc.classification, policy_version: doc.policy_version }),
        }),
      ),
    })
    .to(chunkTopic, { name: 'chunk-events', encode: chunkEventEncoder(services.chunkEvents) })

  return builder.build()
}

/**
 * The app every command deploys (`ragstream run|sink|status|replay|promote knowledge-base`): v1 keeps the
 * names above; the framework derives every other version's names and passes the services in.
 */
export default defineApp({
  name: 'knowledge-base',
  sourcePrefix: { default: 'kb', env: 'RAGSTREAM_KB_PREFIX' },
  build: (d) =>
    knowledgeBase({
      prefix: d.prefix!,
      applicationId: d.applicationId,
      version: d.version,
      chunkTopic: d.chunkTopic,
      // the framework passes RagServices, governed-chunk services too (until this file uses the declarative tail)
      services: d.services as unknown as GovernedChunkServices,
    }),
})
