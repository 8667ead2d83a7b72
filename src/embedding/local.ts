/**
 * The `local` provider: a sentence-embedding model run in this process by ONNX Runtime, in worker
 * threads — real semantic vectors with no service to call and nothing to pay.
 *
 *   { kind: 'local' }                                         all-minilm-l6-v2-int8, 384 dimensions, 1 worker
 *   { kind: 'local', model: 'e5-small-v2-int8', workers: 2 }
 *
 * The model comes from the pinned table (models.ts), installed by `npm run setup`; the runtime never
 * downloads it. Constructing a provider starts nothing (a topology file builds its services at
 * import, `ragstream describe` included): the workers start on the first call, each loads the model
 * and checks its sha256, and a missing or altered model fails that call with
 * RS_EMBEDDING_MODEL_MISSING and the command that installs it.
 *
 * A call spreads its texts over the workers, longest first, each to the worker with the least work
 * so far (so the workers finish together); each worker embeds one text per inference (deterministic
 * vectors, see local-worker.ts). Back-pressure is the Embedder's: one call in flight
 * (`maxConcurrency` 1), so a batch waits for the workers instead of queueing behind them. The cost of
 * a call is the CPU time the workers spent on it (`cpuMs`), the local equivalent of billed tokens.
 */
import { Worker } from 'node:worker_threads'
import { join } from 'node:path'
import { RagstreamError } from '../errors.ts'
import type { WorkerReply, WorkerSetup } from './local-worker.ts'
import {
  DEFAULT_LOCAL_MODEL,
  installHint,
  LOCAL_MODELS,
  modelDir,
  type LocalModelId,
  type LocalModelSpec,
} from './models.ts'
import type { EmbeddingProvider, EmbeddingResult } from './provider.ts'

export interface LocalEmbeddingConfig {
  readonly kind: 'local'
  /** A model id of the pinned table (src/embedding/models.ts); default `all-minilm-l6-v2-int8`. */
  readonly model?: LocalModelId
  /** The model's size (384 for every supported model); when given, it must match. */
  readonly dimensions?: number
  /** Worker threads, each with its own ONNX Runtime session on one core; default 1. */
  readonly workers?: number
  /** Texts per call (the Embedder's batches); default 64 per worker. */
  readonly maxBatchItems?: number
  /**
   * `passage` (default) embeds indexed text with the model's passage prefix; `query` embeds search
   * queries with its query prefix. Only models trained with instructions (e5, bge) differ.
   */
  readonly input?: 'passage' | 'query'
}

/** The worker file beside this module: `.ts` when run from source, `.js` once built into dist/. */
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './local-worker.ts' : './local-worker.js', import.meta.url)

interface Pending {
  resolve(result: { vectors: Float32Array; tokens: number; cpuMicros: number }): void
  reject(error: Error): void
}

/** One worker thread and the calls it has not answered yet. */
class ModelWorker {
  readonly ready: Promise<void>
  readonly #worker: Worker
  readonly #pending = new Map<number, Pending>()
  #nextId = 0
  #dead: Error | undefined

  constructor(setup: WorkerSetup, modelId: string) {
    this.#worker = new Worker(WORKER_URL, { workerData: setup })
    this.#worker.unref() // an idle model never keeps the process alive; calls in flight ref it
    this.ready = new Promise<void>((resolve, reject) => {
      this.#worker.on('message', (message: WorkerReply) => {
        switch (message.type) {
          case 'ready':
            resolve()
            return
          case 'failed':
            reject(
              message.missing
                ? new RagstreamError(
                    'RS_EMBEDDING_MODEL_MISSING',
                    `local embedding model ${modelId} is not installed: ${message.message}`,
                    { context: { model: modelId, path: setup.onnxPath }, hint: installHint(modelId) },
                  )
                : new RagstreamError(
                    'RS_EMBEDDING_FAILED',
                    `local embedding model ${modelId} failed to load: ${message.message}`,
                    { context: { model: modelId, service: 'embedding', address: 'local' } },
                  ),
            )
            return
          case 'done':
          case 'error': {
            const pending = this.#pending.get(message.id)
            this.#pending.delete(message.id)
            if (this.#pending.size === 0) this.#worker.unref()
            if (message.type === 'done') pending?.resolve(message)
            else
              pending?.reject(
                new RagstreamError(
                  'RS_EMBEDDING_FAILED',
                  `local embedding model ${modelId} failed: ${message.message}`,
                  {
                    context: { model: modelId, service: 'embedding', address: 'local' },
                  },
                ),
              )
          }
        }
      })
      const die = (error: Error): void => {
        this.#dead = new RagstreamError(
          'RS_EMBEDDING_FAILED',
          `a worker of local embedding model ${modelId} stopped: ${error.message}`,
          { context: { model: modelId, service: 'embedding', address: 'local' }, cause: error },
        )
        reject(this.#dead)
        for (const pending of this.#pending.values()) pending.reject(this.#dead)
        this.#pending.clear()
      }
      this.#worker.on('error', die)
      this.#worker.on('exit', (code) => die(new Error(`exit code ${code}`)))
    })
    this.ready.catch(() => {})
  }

  get dead(): boolean {
    return this.#dead !== undefined
  }

  embed(texts: readonly string[]): Promise<{ vectors: Float32Array; tokens: number; cpuMicros: number }> {
    if (this.#dead) return Promise.reject(this.#dead)
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#worker.ref()
      this.#worker.postMessage({ id, texts })
    })
  }

  async terminate(): Promise<void> {
    this.#worker.removeAllListeners('exit')
    await this.#worker.terminate()
  }
}

export class LocalProvider implements EmbeddingProvider {
  readonly model: string
  readonly dimensions: number
  readonly maxBatchItems: number
  readonly maxBatchTokens: number
  readonly maxConcurrency = 1
  readonly spec: LocalModelSpec
  readonly #workers: number
  readonly #prefix: string
  readonly #env: NodeJS.ProcessEnv
  #pool: ModelWorker[] | undefined

  constructor(config: LocalEmbeddingConfig = { kind: 'local' }, env: NodeJS.ProcessEnv = process.env) {
    this.spec = LOCAL_MODELS[config.model ?? DEFAULT_LOCAL_MODEL]
    this.model = `local:${this.spec.id}`
    this.dimensions = this.spec.dimensions
    this.#workers = config.workers ?? 1
    this.maxBatchItems = config.maxBatchItems ?? 64 * this.#workers
    this.maxBatchTokens = this.maxBatchItems * this.spec.maxTokens
    this.#prefix = config.input === 'query' ? this.spec.queryPrefix : this.spec.passagePrefix
    this.#env = env
  }

  /** Where the model's files are expected. */
  get modelDir(): string {
    return modelDir(this.spec, this.#env)
  }

  #start(): ModelWorker[] {
    if (this.#pool && !this.#pool.some((w) => w.dead)) return this.#pool
    const dir = this.modelDir
    const setup: WorkerSetup = {
      onnxPath: join(dir, this.spec.onnx.name),
      onnxSha256: this.spec.onnx.sha256,
      tokenizerPath: join(dir, this.spec.tokenizer.name),
      tokenizerSha256: this.spec.tokenizer.sha256,
      dimensions: this.spec.dimensions,
      pooling: this.spec.pooling,
      maxTokens: this.spec.maxTokens,
    }
    const old = this.#pool
    this.#pool = Array.from({ length: this.#workers }, () => new ModelWorker(setup, this.spec.id))
    // A pool with a dead worker is replaced whole on the next call (the runtime retries the batch).
    if (old) for (const worker of old) void worker.terminate().catch(() => {})
    return this.#pool
  }

  async embedBatch(texts: readonly string[]): Promise<EmbeddingResult> {
    const pool = this.#start()
    await Promise.all(pool.map((w) => w.ready))
    // Longest first, each to the least-loaded worker: the workers finish at about the same time.
    const order = texts.map((_, i) => i).sort((a, b) => texts[b].length - texts[a].length || a - b)
    const shares: number[][] = pool.map(() => [])
    const load = pool.map(() => 0)
    for (const i of order) {
      let w = 0
      for (let k = 1; k < pool.length; k++) if (load[k] < load[w]) w = k
      shares[w].push(i)
      load[w] += texts[i].length + 16
    }
    const answers = await Promise.all(
      shares.map((share, w) =>
        share.length === 0 ? Promise.resolve(undefined) : pool[w].embed(share.map((i) => this.#prefix + texts[i])),
      ),
    )
    const d = this.dimensions
    const vectors: Float32Array[] = new Array(texts.length)
    let tokens = 0
    let cpuMicros = 0
    answers.forEach((answer, w) => {
      if (!answer) return
      tokens += answer.tokens
      cpuMicros += answer.cpuMicros
      shares[w].forEach((i, k) => (vectors[i] = answer.vectors.slice(k * d, (k + 1) * d)))
    })
    return { vectors, tokens, cpuMs: cpuMicros / 1000 }
  }

  /** Stops the workers (they never keep the process alive, but tests and benchmarks end them). */
  async close(): Promise<void> {
    const pool = this.#pool
    this.#pool = undefined
    if (pool) await Promise.all(pool.map((w) => w.terminate()))
  }
}
