/**
 * The `openai` provider: any service speaking OpenAI's embeddings API — OpenAI, Azure OpenAI
 * (deployment base URL with `?api-version=…`, `authHeader: 'api-key'`), vLLM, Hugging Face TEI,
 * Ollama's OpenAI-compatible endpoint, LiteLLM.
 *
 *   POST <baseUrl>/embeddings   {"model": "...", "input": ["...", ...], "encoding_format": "float"[, "dimensions": n]}
 *   200  {"data": [{"index": 0, "embedding": [0.1, ...]}, ...], "usage": {"prompt_tokens": 12, ...}}
 *
 * 429 and 5xx responses, timeouts and connection errors are retried with exponential backoff and
 * jitter, waiting what `Retry-After` (or OpenAI's `retry-after-ms`) asks for when present; once the
 * attempts are spent the call fails with RS_EMBEDDING_FAILED, which is retriable: the runtime aborts
 * the batch and processes it again, so no record is ever skipped. Other 4xx answers (bad key, unknown
 * model) are configuration problems: RS_EMBEDDING_REJECTED, not retried.
 *
 * The API key is read from an environment variable whose *name* is configured; the key itself never
 * appears in errors or logs (it is scrubbed from echoed response bodies too).
 */
import { RagstreamError } from '../errors.ts'
import { redactUrl } from '../config/endpoints.ts'
import type { EmbeddingProvider, EmbeddingResult } from './provider.ts'

export interface OpenAIEmbeddingConfig {
  readonly kind: 'openai'
  readonly model: string
  readonly dimensions: number
  /** Default `https://api.openai.com/v1`; a query string (Azure's api-version) is kept. */
  readonly baseUrl?: string
  /** Name of the environment variable holding the key; default `OPENAI_API_KEY`. Unset = no auth header (local servers). */
  readonly apiKeyEnv?: string
  /** Default `authorization` (Bearer); Azure uses `api-key`. */
  readonly authHeader?: 'authorization' | 'api-key'
  /** Send `dimensions` in the request (models that can shorten vectors, e.g. text-embedding-3-*). Default false. */
  readonly sendDimensions?: boolean
  /** Default 128 items and 100 000 approximate tokens per request. */
  readonly maxBatchItems?: number
  readonly maxBatchTokens?: number
  /** Default 2 requests in flight. */
  readonly maxConcurrency?: number
  /** Per attempt; default 30 000 ms. */
  readonly timeoutMs?: number
  /** Retries after the first attempt; default 6. */
  readonly maxRetries?: number
  /** Backoff: first delay and cap, default 500 ms and 20 000 ms; `Retry-After` is honoured up to `maxRetryAfterMs` (default 60 000). */
  readonly initialBackoffMs?: number
  readonly maxBackoffMs?: number
  readonly maxRetryAfterMs?: number
}

const RETRIABLE_STATUS = (status: number) => status === 408 || status === 429 || status >= 500

export class OpenAIProvider implements EmbeddingProvider {
  readonly model: string
  readonly dimensions: number
  readonly maxBatchItems: number
  readonly maxBatchTokens: number
  readonly maxConcurrency: number
  readonly #config: OpenAIEmbeddingConfig
  readonly #url: string
  readonly #address: string
  readonly #apiKey: string | undefined

  constructor(config: OpenAIEmbeddingConfig, env: NodeJS.ProcessEnv = process.env) {
    this.#config = config
    this.model = `openai:${config.model}`
    this.dimensions = config.dimensions
    this.maxBatchItems = config.maxBatchItems ?? 128
    this.maxBatchTokens = config.maxBatchTokens ?? 100_000
    this.maxConcurrency = config.maxConcurrency ?? 2
    const base = new URL(config.baseUrl ?? 'https://api.openai.com/v1')
    base.pathname = `${base.pathname.replace(/\/+$/, '')}/embeddings`
    this.#url = base.toString()
    this.#address = redactUrl(this.#url)
    this.#apiKey = env[config.apiKeyEnv ?? 'OPENAI_API_KEY']?.trim() || undefined
  }

  async embedBatch(texts: readonly string[]): Promise<EmbeddingResult> {
    const c = this.#config
    const body = JSON.stringify({
      model: c.model,
      input: texts,
      encoding_format: 'float',
      ...(c.sendDimensions ? { dimensions: c.dimensions } : {}),
    })
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (this.#apiKey) {
      if (c.authHeader === 'api-key') headers['api-key'] = this.#apiKey
      else headers.authorization = `Bearer ${this.#apiKey}`
    }
    const maxRetries = c.maxRetries ?? 6
    let lastProblem: string
    for (let attempt = 0; ; attempt++) {
      let waitMs: number | undefined
      try {
        const response = await fetch(this.#url, {
          method: 'POST',
          headers,
          body,
          signal: AbortSignal.timeout(c.timeoutMs ?? 30_000),
        })
        if (response.ok) return { ...this.#parse(await response.json(), texts.length), retries: attempt }
        const text = this.#scrub(await response.text().catch(() => ''))
        lastProblem = `HTTP ${response.status}${text ? `: ${text.slice(0, 300)}` : ''}`
        if (!RETRIABLE_STATUS(response.status)) {
          throw new RagstreamError(
            'RS_EMBEDDING_REJECTED',
            `embedding service ${this.#address} rejected model ${c.model}: ${lastProblem}`,
            {
              context: {
                service: 'embedding',
                address: this.#address,
                model: c.model,
                status: response.status,
                attempts: attempt + 1,
              },
              hint:
                response.status === 401 || response.status === 403
                  ? `check the API key in $${c.apiKeyEnv ?? 'OPENAI_API_KEY'}`
                  : 'check the model name, base URL and input sizes',
            },
          )
        }
        waitMs = retryAfterMs(response.headers, c.maxRetryAfterMs ?? 60_000)
      } catch (error) {
        if (error instanceof RagstreamError) throw error
        lastProblem =
          error instanceof Error
            ? error.name === 'TimeoutError'
              ? `no answer within ${c.timeoutMs ?? 30_000} ms`
              : error.message
            : String(error)
      }
      if (attempt >= maxRetries) {
        throw new RagstreamError(
          'RS_EMBEDDING_FAILED',
          `embedding service ${this.#address} failed for model ${c.model} after ${attempt + 1} attempts: ${lastProblem}`,
          {
            context: { service: 'embedding', address: this.#address, model: c.model, attempts: attempt + 1 },
            hint: "the runtime retries the batch; check the service's health and rate limits, or raise maxRetries / timeoutMs",
          },
        )
      }
      const initial = c.initialBackoffMs ?? 500
      const backoff = Math.min(c.maxBackoffMs ?? 20_000, initial * 2 ** attempt) * (0.5 + Math.random() / 2)
      await new Promise((resolve) => setTimeout(resolve, waitMs ?? backoff))
    }
  }

  #parse(json: unknown, expected: number): EmbeddingResult {
    const data = (json as { data?: unknown })?.data
    if (!Array.isArray(data) || data.length !== expected) {
      throw new RagstreamError(
        'RS_EMBEDDING_FAILED',
        `embedding service ${this.#address} returned ${Array.isArray(data) ? data.length : 'no'} embeddings for ${expected} inputs (model ${this.#config.model})`,
        {
          context: { service: 'embedding', address: this.#address, model: this.#config.model },
        },
      )
    }
    const vectors: ArrayLike<number>[] = new Array(expected)
    for (const [position, item] of (data as { index?: number; embedding?: unknown }[]).entries()) {
      const index = typeof item.index === 'number' ? item.index : position
      if (!Array.isArray(item.embedding) || index < 0 || index >= expected) {
        throw new RagstreamError(
          'RS_EMBEDDING_FAILED',
          `embedding service ${this.#address} returned a malformed embedding at position ${position} (model ${this.#config.model})`,
          {
            context: { service: 'embedding', address: this.#address, model: this.#config.model },
          },
        )
      }
      vectors[index] = item.embedding as number[]
    }
    const usage = (json as { usage?: { prompt_tokens?: unknown; total_tokens?: unknown } }).usage
    const tokens =
      typeof usage?.prompt_tokens === 'number'
        ? usage.prompt_tokens
        : typeof usage?.total_tokens === 'number'
          ? usage.total_tokens
          : undefined
    return tokens === undefined ? { vectors } : { vectors, tokens }
  }

  #scrub(text: string): string {
    return this.#apiKey ? text.split(this.#apiKey).join('***') : text
  }
}

/** `retry-after-ms` (OpenAI) or `Retry-After` in seconds or as an HTTP date; capped. */
export function retryAfterMs(headers: Headers, capMs: number): number | undefined {
  const ms = Number(headers.get('retry-after-ms'))
  if (headers.has('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return Math.min(ms, capMs)
  const value = headers.get('retry-after')
  if (value === null) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, capMs)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - Date.now()), capMs)
}
