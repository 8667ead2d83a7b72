/**
 * The chunking stage: markup → plain text, split by a pluggable strategy, format each piece with a
 * template, then give every chunk its stable id and content hash. Pure and synchronous.
 *
 * @example
 * const chunker = createChunker({ strategy: { kind: 'recursive', size: 800, overlap: 100, unit: 'chars' },
 *                                 markup: 'markdown', template: '{title}\n\n{text}' })
 * chunker.chunk({ topology: 'support', entityType: 'ticket', entityKey: '42', text: row.body, fields: row })
 */
import { ConfigError, type Problem } from '../errors.ts'
import { chunkId, contentHash } from './chunk-id.ts'
import { toPlainText, type Markup } from './markup.ts'
import { recursiveSplit } from './recursive-split.ts'
import type { SizeUnit } from './size.ts'
import { compileTemplate, DEFAULT_TEMPLATE, parseTemplate, type TemplateFields } from './template.ts'
import { createHash } from 'node:crypto'

/** A splitting strategy: plain text in, chunk texts out (in order, none empty). Implement it to plug in your own. */
export interface ChunkingStrategy {
  /** Identifies the strategy and its settings in lineage (`chunker` field of chunk events). */
  readonly id: string
  split(text: string): string[]
}

export interface RecursiveStrategyConfig {
  readonly kind: 'recursive'
  /** Maximum chunk size, in `unit`. */
  readonly size: number
  /** Repeated tail of the previous chunk, in `unit`; default 0, must be < size. */
  readonly overlap?: number
  /** Default `chars`. `tokens` is approximate (4 chars per token). */
  readonly unit?: SizeUnit
}

/** The whole text is one chunk: short records (titles, FAQ answers, product rows). */
export interface WholeStrategyConfig {
  readonly kind: 'whole'
}

export type StrategyConfig = RecursiveStrategyConfig | WholeStrategyConfig
export type StrategyKind = StrategyConfig['kind']

export interface ChunkerConfig {
  readonly strategy: StrategyConfig | ChunkingStrategy
  /** Convert the text to plain text first; default `none`. */
  readonly markup?: Markup
  /** Default `{text}`; see template.ts. */
  readonly template?: string
}

export interface ChunkInput {
  readonly topology: string
  readonly entityType: string
  readonly entityKey: string
  /** The content field(s) to chunk, already concatenated. */
  readonly text: string
  /** Values for the template's placeholders (row fields, joined metadata). */
  readonly fields?: TemplateFields
}

export interface Chunk {
  readonly id: string
  readonly index: number
  /** Formatted text: what is embedded and stored. */
  readonly text: string
  /** sha256 hex of `text`. */
  readonly contentHash: string
}

export interface Chunker {
  /** Strategy, markup and template in one identifier, for lineage. */
  readonly id: string
  chunk(input: ChunkInput): Chunk[]
}

/** Every strategy kind must have a factory and a validator: the compiler refuses a kind nobody handles. */
const STRATEGIES: {
  [K in StrategyKind]: {
    validate(config: Extract<StrategyConfig, { kind: K }>, path: string): Problem[]
    create(config: Extract<StrategyConfig, { kind: K }>): ChunkingStrategy
  }
} = {
  recursive: {
    validate(config, path) {
      const problems: Problem[] = []
      const unit = config.unit ?? 'chars'
      if (unit !== 'chars' && unit !== 'tokens')
        problems.push({ path: `${path}/unit`, message: 'must be "chars" or "tokens"' })
      if (!Number.isInteger(config.size) || config.size < 1)
        problems.push({ path: `${path}/size`, message: 'must be a positive integer' })
      const overlap = config.overlap ?? 0
      if (!Number.isInteger(overlap) || overlap < 0)
        problems.push({ path: `${path}/overlap`, message: 'must be a non-negative integer' })
      else if (Number.isInteger(config.size) && overlap >= config.size)
        problems.push({ path: `${path}/overlap`, message: `must be smaller than size (${config.size})` })
      return problems
    },
    create(config) {
      const options = { size: config.size, overlap: config.overlap ?? 0, unit: config.unit ?? 'chars' } as const
      return {
        id: `recursive(size=${options.size},overlap=${options.overlap},unit=${options.unit})`,
        split: (text) => recursiveSplit(text, options),
      }
    },
  },
  whole: {
    validate: () => [],
    create: () => ({ id: 'whole', split: (text) => (text.trim() ? [text.trim()] : []) }),
  },
}

function isStrategy(value: StrategyConfig | ChunkingStrategy): value is ChunkingStrategy {
  return typeof (value as ChunkingStrategy).split === 'function'
}

/** Every problem of a chunker config, with paths under `path` (e.g. `/topology/nodes/chunk`). */
export function validateChunkerConfig(config: ChunkerConfig, path = ''): Problem[] {
  const problems: Problem[] = []
  const strategy = config.strategy as StrategyConfig | ChunkingStrategy | undefined
  if (strategy === undefined || strategy === null) problems.push({ path: `${path}/strategy`, message: 'required' })
  else if (!isStrategy(strategy)) {
    const entry = STRATEGIES[strategy.kind] as (typeof STRATEGIES)[StrategyKind] | undefined
    if (!entry)
      problems.push({
        path: `${path}/strategy/kind`,
        message: `unknown strategy "${String(strategy.kind)}"; one of ${Object.keys(STRATEGIES).join(', ')}`,
      })
    else problems.push(...entry.validate(strategy as never, `${path}/strategy`))
  }
  if (config.markup !== undefined && !['none', 'markdown', 'html'].includes(config.markup)) {
    problems.push({ path: `${path}/markup`, message: 'must be "none", "markdown" or "html"' })
  }
  if (config.template !== undefined) {
    for (const message of parseTemplate(config.template).problems) problems.push({ path: `${path}/template`, message })
  }
  return problems
}

/** Builds a chunker; throws a ConfigError listing every problem. */
export function createChunker(config: ChunkerConfig): Chunker {
  const problems = validateChunkerConfig(config)
  if (problems.length > 0) throw new ConfigError(problems, 'chunker configuration')
  const strategy = isStrategy(config.strategy)
    ? config.strategy
    : STRATEGIES[config.strategy.kind].create(config.strategy as never)
  const markup = config.markup ?? 'none'
  const template = config.template ?? DEFAULT_TEMPLATE
  const format = compileTemplate(template)
  const templateId =
    template === DEFAULT_TEMPLATE ? '' : `+template:${createHash('sha256').update(template).digest('hex').slice(0, 8)}`
  const id = `${strategy.id}${markup === 'none' ? '' : `+${markup}`}${templateId}`
  const noFields: TemplateFields = {}
  return {
    id,
    chunk(input) {
      const pieces = strategy.split(toPlainText(input.text, markup))
      const fields = input.fields ?? noFields
      const chunks: Chunk[] = new Array(pieces.length)
      for (let index = 0; index < pieces.length; index++) {
        const text = format(pieces[index], fields)
        chunks[index] = {
          id: chunkId(input.topology, input.entityType, input.entityKey, index),
          index,
          text,
          contentHash: contentHash(text),
        }
      }
      return chunks
    },
  }
}
