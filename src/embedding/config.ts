/**
 * Embedding configuration: one object with a `kind` discriminator, validated in one pass (every
 * problem with its path), turned into a provider by `createEmbeddingProvider`.
 *
 *   { kind: 'hashing', dimensions: 384 }                                     (the default of tests and CI)
 *   { kind: 'local', model: 'all-minilm-l6-v2-int8', workers?: 1 }           (ONNX in worker threads; npm run setup installs it)
 *   { kind: 'openai', model: 'text-embedding-3-small', dimensions: 1536, baseUrl?, apiKeyEnv?, … }
 *   { kind: 'precomputed', field: 'embedding', dimensions: 768 }              (bring your own vectors)
 *
 * Rows record the model that embedded them (`Embedder.model`: `hashing:v1@384`,
 * `local:all-minilm-l6-v2-int8@384`, `openai:text-embedding-3-small@1536`); `providerForModel` turns
 * that id back into a provider that embeds a search query into the same space.
 */
import { availableParallelism } from 'node:os'
import { ConfigError, type Problem } from '../errors.ts'
import { HashingProvider, type HashingEmbeddingConfig } from './hashing.ts'
import { LocalProvider, type LocalEmbeddingConfig } from './local.ts'
import { DEFAULT_LOCAL_MODEL, isLocalModelId, LOCAL_MODELS, localModelInstalled } from './models.ts'
import { OpenAIProvider, type OpenAIEmbeddingConfig } from './openai.ts'
import type { PrecomputedEmbeddingConfig } from './precomputed.ts'
import type { EmbeddingProvider } from './provider.ts'

export type EmbeddingConfig =
  HashingEmbeddingConfig | LocalEmbeddingConfig | OpenAIEmbeddingConfig | PrecomputedEmbeddingConfig
export type EmbeddingKind = EmbeddingConfig['kind']
/** The kinds that have a provider (`precomputed` reads vectors from the rows instead). */
export type ProviderEmbeddingConfig = HashingEmbeddingConfig | LocalEmbeddingConfig | OpenAIEmbeddingConfig

export const DEFAULT_EMBEDDING: HashingEmbeddingConfig = { kind: 'hashing', dimensions: 384 }

const MAX_DIMENSIONS = 16_000 // pgvector's limit for the vector type

const positiveInt = (
  value: unknown,
  path: string,
  problems: Problem[],
  required = false,
  max = Number.MAX_SAFE_INTEGER,
): void => {
  if (value === undefined && !required) return
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > max) {
    problems.push({ path, message: value === undefined ? 'required' : `must be an integer from 1 to ${max}` })
  }
}

const VALIDATORS: {
  [K in EmbeddingKind]: (config: Extract<EmbeddingConfig, { kind: K }>, path: string, problems: Problem[]) => void
} = {
  hashing(config, path, problems) {
    positiveInt(config.dimensions, `${path}/dimensions`, problems, false, MAX_DIMENSIONS)
  },
  local(config, path, problems) {
    const model = config.model ?? DEFAULT_LOCAL_MODEL
    if (typeof model !== 'string' || !isLocalModelId(model)) {
      problems.push({ path: `${path}/model`, message: `must be one of ${Object.keys(LOCAL_MODELS).join(', ')}` })
    } else if (config.dimensions !== undefined && config.dimensions !== LOCAL_MODELS[model].dimensions) {
      problems.push({
        path: `${path}/dimensions`,
        message: `${model} embeds into ${LOCAL_MODELS[model].dimensions} dimensions (leave it out or set /sink/dimensions to that)`,
      })
    }
    positiveInt(config.workers, `${path}/workers`, problems, false, Math.max(1, availableParallelism()))
    positiveInt(config.maxBatchItems, `${path}/maxBatchItems`, problems)
    if (config.input !== undefined && config.input !== 'passage' && config.input !== 'query')
      problems.push({ path: `${path}/input`, message: 'must be "passage" or "query"' })
  },
  openai(config, path, problems) {
    if (typeof config.model !== 'string' || !config.model) problems.push({ path: `${path}/model`, message: 'required' })
    positiveInt(config.dimensions, `${path}/dimensions`, problems, true, MAX_DIMENSIONS)
    if (config.baseUrl !== undefined) {
      try {
        const url = new URL(config.baseUrl)
        if (url.protocol !== 'http:' && url.protocol !== 'https:')
          problems.push({ path: `${path}/baseUrl`, message: 'must be an http(s) URL' })
        if (url.username || url.password)
          problems.push({
            path: `${path}/baseUrl`,
            message: 'must not contain credentials; put the key in the environment variable named by apiKeyEnv',
          })
      } catch {
        problems.push({ path: `${path}/baseUrl`, message: 'is not a URL' })
      }
    }
    if (config.apiKeyEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(config.apiKeyEnv)) {
      problems.push({
        path: `${path}/apiKeyEnv`,
        message: 'must be the name of an environment variable (not the key itself)',
      })
    }
    if (config.authHeader !== undefined && config.authHeader !== 'authorization' && config.authHeader !== 'api-key') {
      problems.push({ path: `${path}/authHeader`, message: 'must be "authorization" or "api-key"' })
    }
    for (const name of [
      'maxBatchItems',
      'maxBatchTokens',
      'maxConcurrency',
      'timeoutMs',
      'initialBackoffMs',
      'maxBackoffMs',
      'maxRetryAfterMs',
    ] as const) {
      positiveInt(config[name], `${path}/${name}`, problems)
    }
    if (config.maxRetries !== undefined && (!Number.isInteger(config.maxRetries) || config.maxRetries < 0)) {
      problems.push({ path: `${path}/maxRetries`, message: 'must be a non-negative integer' })
    }
  },
  precomputed(config, path, problems) {
    if (typeof config.field !== 'string' || !config.field) problems.push({ path: `${path}/field`, message: 'required' })
    positiveInt(config.dimensions, `${path}/dimensions`, problems, true, MAX_DIMENSIONS)
  },
}

export function validateEmbeddingConfig(config: EmbeddingConfig, path = ''): Problem[] {
  const problems: Problem[] = []
  const validate = VALIDATORS[config?.kind] as ((c: EmbeddingConfig, p: string, out: Problem[]) => void) | undefined
  if (!validate)
    problems.push({ path: `${path}/kind`, message: `must be one of ${Object.keys(VALIDATORS).join(', ')}` })
  else validate(config, path, problems)
  return problems
}

/**
 * The provider for a built-in, local or API-backed kind; `precomputed` has none (use vectorFromField).
 * Connects and loads nothing: the local model's workers start on the first call.
 */
export function createEmbeddingProvider(
  config: ProviderEmbeddingConfig,
  env: NodeJS.ProcessEnv = process.env,
): EmbeddingProvider {
  const problems = validateEmbeddingConfig(config)
  if (problems.length > 0) throw new ConfigError(problems, 'embedding configuration')
  switch (config.kind) {
    case 'hashing':
      return new HashingProvider(config)
    case 'local':
      return new LocalProvider(config, env)
    case 'openai':
      return new OpenAIProvider(config, env)
  }
}

/** A model id as rows record it (`Embedder.model`), split: `local:all-minilm-l6-v2-int8@384`. */
export interface ModelId {
  readonly kind: string
  readonly model: string
  readonly dimensions: number
}

/** Parses `<kind>:<model>@<dimensions>`; undefined when the text has another shape. */
export function parseModelId(modelId: string): ModelId | undefined {
  const m = /^([a-z][a-z0-9-]*):(.+)@([1-9][0-9]*)$/.exec(modelId.trim())
  return m ? { kind: m[1], model: m[2], dimensions: Number(m[3]) } : undefined
}

/**
 * A provider that embeds a search query into the space of rows embedded by `modelId` (the
 * `embedding_model` column: `Embedder.model`), with the model's query prefix where it has one:
 *
 *   hashing:v1@384                       the built-in hashing embedder, 384 dimensions
 *   local:all-minilm-l6-v2-int8@384      the local model (installed by `npm run setup`), input 'query'
 *   openai:text-embedding-3-small@1536   the OpenAI-compatible API; base URL from RAGSTREAM_EMBEDDING_URL,
 *                                        key from OPENAI_API_KEY (or the variable RAGSTREAM_EMBEDDING_API_KEY_ENV names)
 *
 * Throws RS_CONFIG_INVALID naming the id when no provider can produce those vectors (an unknown kind
 * or model, `precomputed:…`, another hashing version), so a query never compares vectors of two
 * spaces. Call `close()` on the result when done (it stops the local model's workers).
 *
 * @example
 * const provider = providerForModel('local:all-minilm-l6-v2-int8@384')
 * const [vector] = (await provider.embedBatch(['refund for a damaged parcel'])).vectors
 */
export function providerForModel(modelId: string, env: NodeJS.ProcessEnv = process.env): EmbeddingProvider {
  const id = parseModelId(modelId)
  const refuse = (why: string): never => {
    throw new ConfigError(
      [{ path: 'embedding_model', message: `rows were embedded with ${JSON.stringify(modelId)}: ${why}` }],
      'query embedding',
      'RS_CONFIG_INVALID',
      'pass the query vector yourself (ragstream query --vector), or re-index with a model ragstream runs',
    )
  }
  if (!id) return refuse('expected <kind>:<model>@<dimensions>, e.g. hashing:v1@384')
  let provider: EmbeddingProvider
  switch (id.kind) {
    case 'hashing':
      if (id.model !== 'v1') return refuse(`this ragstream has hashing:v1 only`)
      provider = createEmbeddingProvider({ kind: 'hashing', dimensions: id.dimensions }, env)
      break
    case 'local':
      if (!isLocalModelId(id.model))
        return refuse(`no local model ${id.model}; this ragstream has ${Object.keys(LOCAL_MODELS).join(', ')}`)
      if (LOCAL_MODELS[id.model].dimensions !== id.dimensions)
        return refuse(`${id.model} embeds into ${LOCAL_MODELS[id.model].dimensions} dimensions, not ${id.dimensions}`)
      provider = createEmbeddingProvider({ kind: 'local', model: id.model, input: 'query' }, env)
      break
    case 'openai': {
      const baseUrl = env.RAGSTREAM_EMBEDDING_URL?.trim() || undefined
      const apiKeyEnv = env.RAGSTREAM_EMBEDDING_API_KEY_ENV?.trim() || undefined
      provider = createEmbeddingProvider(
        {
          kind: 'openai',
          model: id.model,
          dimensions: id.dimensions,
          ...(baseUrl ? { baseUrl } : {}),
          ...(apiKeyEnv ? { apiKeyEnv } : {}),
        },
        env,
      )
      break
    }
    default:
      return refuse(`no provider of kind ${id.kind} (hashing, local and openai have one)`)
  }
  const produces = `${provider.model}@${provider.dimensions}`
  if (produces !== `${id.kind}:${id.model}@${id.dimensions}`)
    return refuse(`this ragstream would embed with ${produces}`)
  return provider
}

/**
 * The embedding of the demo and of `query` when nothing is configured: the local model when it is
 * installed, else the hashing embedder (tests and CI keep hashing by configuring nothing else).
 */
export function defaultLocalOrHashing(env: NodeJS.ProcessEnv = process.env): {
  readonly config: HashingEmbeddingConfig | LocalEmbeddingConfig
  /** Why hashing, when it is the fallback. */
  readonly fallback?: string
} {
  if (localModelInstalled(DEFAULT_LOCAL_MODEL, env)) return { config: { kind: 'local', model: DEFAULT_LOCAL_MODEL } }
  return {
    config: DEFAULT_EMBEDDING,
    fallback: `the local model ${DEFAULT_LOCAL_MODEL} is not installed (npm run setup installs it), so hashing:v1 embeds: lexical matches, not semantic ones`,
  }
}
