// knowledge-base — a second shape: published help-centre articles (Markdown, from a compacted upsert
// topic) joined (inner) to their category (Debezium CDC), governed (PII redacted, classified by the
// category; no data subject, so no forget), chunked one Markdown section per chunk, embedded and
// written as chunk events to rag.chunks.knowledge-base, with the audit events beside them.
//
//   <prefix>.articles ──► articles ──► published ── inner FK join ──► categories ◄── <prefix>.public.categories
//   (every source redacted as it is decoded)
//                                          ▼
//                                       govern: classify by category, redact text and metadata, audit
//                                          ▼
//                                       chunk by heading → diff → embed ──► rag.chunks.knowledge-base
//
// Topic prefix: RAGSTREAM_KB_PREFIX for `ragstream run`/`describe` (default `kb`), or the
// `knowledgeBase({ prefix, ... })` factory in tests.
import {
  cdcTableDecoder,
  DebeziumDecoder,
  defineApp,
  definePolicy,
  markdownToText,
  recursiveSplit,
} from '../src/index.ts'
import { DEFAULT_CLASSIFICATION_LABELS, redactAtSource, TopologyBuilder, UpsertDecoder } from '../src/index.ts'
import type { AppDeployment, ChunkingStrategy, RowLineage, Topology } from '../src/index.ts'

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

/** What a deployment names (tests pass their own names and services); only `prefix` is required. */
export type KnowledgeBaseOptions = Partial<
  Pick<AppDeployment, 'applicationId' | 'version' | 'chunkTopic' | 'services'>
> & {
  readonly prefix: string
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

/** Builds knowledge-base over the topics of `prefix` (the app's `build`, and tests' factory). */
export function knowledgeBase(options: KnowledgeBaseOptions): Topology {
  const { prefix, services, applicationId = 'knowledge-base', version = 'v1' } = options
  const builder = new TopologyBuilder({ applicationId, version, services })

  // ── sources: a compacted upsert topic of articles and a CDC table of categories (JSON: `decode` only).
  //    Both are redacted as they are decoded, so no store or changelog holds their raw PII.
  const articles = builder.table<Article>(`${prefix}.articles`, {
    name: 'articles',
    decode: redactAtSource(cdcTableDecoder(new UpsertDecoder({ valueFormat: 'json' })).decode),
  })
  const categories = builder.cdcTable<Category>(`${prefix}.public.categories`, {
    name: 'categories',
    decode: redactAtSource(
      cdcTableDecoder(new DebeziumDecoder({ valueFormat: 'json' }), { lineageField: false }).decode,
    ),
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
    //    Audit events ride the chunk topic (the framework wires them), so the sink writes them with the rows.
    .govern({
      name: 'govern',
      policy: knowledgeBasePolicy,
      topologyVersion: version,
      document: (article) => ({ text: article.body, metadata: { title: article.title, category: article.category } }),
      joined: (article) => ({ category: article.category, classification: article.classification }),
    })
    // ── one chunk per Markdown section; an article is about no one, so only the label and policy are recorded
    .chunk({
      entityType: 'article',
      strategy: markdownSections(1200),
      template: '{title} ({category})\n\n{text}',
      governance: (doc) => ({ classification: doc.classification, policy_version: doc.policy_version }),
    })
    .embed()
    .toChunks(options.chunkTopic ?? KB_CHUNK_TOPIC)

  return builder.build()
}

/**
 * The app every command deploys (`ragstream run|sink|status|replay|promote knowledge-base`): v1 keeps the
 * names above; the framework derives every other version's names and passes the services in.
 */
export default defineApp({
  name: 'knowledge-base',
  sourcePrefix: { default: 'kb', env: 'RAGSTREAM_KB_PREFIX' },
  build: (d) => knowledgeBase({ ...d, prefix: d.prefix! }),
})
