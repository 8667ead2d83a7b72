/**
 * Embedding configuration: one object with a `kind` discriminator, validated in one pass (every
 * problem with its path), turned into a provider by `createEmbeddingProvider`.
 *
 *   { kind: 'hashing', dimensions: 384 }                                     (the default)
 *   { kind: 'openai', model: 'text-embedding-3-small', dimensions: 1536, baseUrl?, apiKeyEnv?, … }
 *   { kind: 'precomputed', field: 'embedding', dimensions: 768 }              (bring your own vectors)
 */
import { ConfigError, type Problem } from '../errors.ts'
import { HashingProvider, type HashingEmbeddingConfig } from './hashing.ts'
import { OpenAIProvider, type OpenAIEmbeddingConfig } from './openai.ts'
import type { PrecomputedEmbeddingConfig } from './precomputed.ts'
import type { EmbeddingProvider } from './provider.ts'

export type EmbeddingConfig = HashingEmbeddingConfig | OpenAIEmbeddingConfig | PrecomputedEmbeddingConfig
export type EmbeddingKind = EmbeddingConfig['kind']

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

/** The provider for an API-backed or built-in kind; `precomputed` has none (use vectorFromField). */
export function createEmbeddingProvider(
  config: HashingEmbeddingConfig | OpenAIEmbeddingConfig,
  env: NodeJS.ProcessEnv = process.env,
): EmbeddingProvider {
  const problems = validateEmbeddingConfig(config)
  if (problems.length > 0) throw new ConfigError(problems, 'embedding configuration')
  switch (config.kind) {
    case 'hashing':
      return new HashingProvider(config)
    case 'openai':
      return new OpenAIProvider(config, env)
  }
}
