/**
 * One worker thread of the local provider (local.ts): one ONNX Runtime session and its tokenizer.
 *
 * Why a worker: `session.run` computes on the calling thread, so inline it would stall the event
 * loop — Kafka heartbeats, transactions, Redis — for a whole batch. Why one intra-op thread with
 * spinning off: two threads never made a ~100-token text faster on this machine kind, and a spinning
 * pool burns a core while idle; parallelism comes from more workers instead. Why one text per
 * inference: the int8 models quantise activations per tensor, so a text's vector would depend on the
 * other texts of a padded batch; alone, the same text gives the same vector, bit for bit, always.
 *
 * Messages (structured clone):
 *   ← workerData  WorkerSetup
 *   → { type: 'ready' } | { type: 'failed', message, missing }
 *   ← { id, texts }
 *   → { id, vectors: Float32Array (texts × dimensions, transferred), tokens, cpuMicros } | { id, error }
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'

export interface WorkerSetup {
  readonly onnxPath: string
  readonly onnxSha256: string
  readonly tokenizerPath: string
  readonly tokenizerSha256: string
  readonly dimensions: number
  readonly pooling: 'mean' | 'cls'
  readonly maxTokens: number
}

export type WorkerReply =
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly message: string; readonly missing: boolean }
  | {
      readonly type: 'done'
      readonly id: number
      readonly vectors: Float32Array
      readonly tokens: number
      readonly cpuMicros: number
    }
  | { readonly type: 'error'; readonly id: number; readonly message: string }

export interface WorkerRequest {
  readonly id: number
  readonly texts: readonly string[]
}

const port = parentPort
if (!port) throw new Error('local-worker.ts runs as a worker thread of the local embedding provider')
const setup = workerData as WorkerSetup

function readPinned(path: string, sha256: string): Buffer {
  const bytes = readFileSync(path)
  const got = createHash('sha256').update(bytes).digest('hex')
  if (got !== sha256) throw Object.assign(new Error(`${path} has sha256 ${got}, expected ${sha256}`), { missing: true })
  return bytes
}

async function start(): Promise<(texts: readonly string[]) => Promise<{ vectors: Float32Array; tokens: number }>> {
  let onnx: Buffer
  let tokenizerJson: unknown
  try {
    onnx = readPinned(setup.onnxPath, setup.onnxSha256)
    tokenizerJson = JSON.parse(readPinned(setup.tokenizerPath, setup.tokenizerSha256).toString('utf8'))
  } catch (error) {
    throw Object.assign(error as Error, { missing: true })
  }
  const [{ Tokenizer }, ort] = await Promise.all([import('@huggingface/tokenizers'), import('onnxruntime-node')])
  // The tokenizer.json of these jars declares truncation and padding at 128; this tokenizer ignores
  // both, and the worker truncates to the model's own limit below (never pads: one text per run).
  const tokenizer = new Tokenizer(tokenizerJson as object, {})
  const session = await ort.InferenceSession.create(onnx, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  })
  const wantsTypeIds = session.inputNames.includes('token_type_ids')
  const d = setup.dimensions

  const embedOne = async (text: string, out: Float32Array, at: number): Promise<number> => {
    let { ids } = tokenizer.encode(text)
    // Keep [CLS] … and the final [SEP]: the model saw every training text framed that way.
    if (ids.length > setup.maxTokens) ids = [...ids.slice(0, setup.maxTokens - 1), ids[ids.length - 1]]
    const n = ids.length
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    }
    if (wantsTypeIds) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(n), [1, n])
    const result = await session.run(feeds)
    const hidden = result[session.outputNames[0]].data as Float32Array
    if (hidden.length !== n * d)
      throw new Error(`the model returned ${hidden.length / n} values per token, the table says ${d}`)
    if (setup.pooling === 'cls') for (let j = 0; j < d; j++) out[at + j] = hidden[j]
    else {
      // Mean over tokens; no padding, so every token counts.
      for (let t = 0; t < n; t++) for (let j = 0; j < d; j++) out[at + j] += hidden[t * d + j]
      for (let j = 0; j < d; j++) out[at + j] /= n
    }
    let norm = 0
    for (let j = 0; j < d; j++) norm += out[at + j] * out[at + j]
    const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0
    for (let j = 0; j < d; j++) out[at + j] *= scale
    return n
  }

  return async (texts) => {
    const vectors = new Float32Array(texts.length * d)
    let tokens = 0
    for (let i = 0; i < texts.length; i++) tokens += await embedOne(texts[i], vectors, i * d)
    return { vectors, tokens }
  }
}

const reply = (message: WorkerReply, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer)

try {
  const embed = await start()
  // Requests are handled one at a time, in arrival order: one session, one thread.
  let queue = Promise.resolve()
  port.on('message', (request: WorkerRequest) => {
    queue = queue.then(async () => {
      const before = process.threadCpuUsage()
      try {
        const { vectors, tokens } = await embed(request.texts)
        const cpu = process.threadCpuUsage(before)
        reply({ type: 'done', id: request.id, vectors, tokens, cpuMicros: cpu.user + cpu.system }, [
          vectors.buffer as ArrayBuffer,
        ])
      } catch (error) {
        reply({ type: 'error', id: request.id, message: error instanceof Error ? error.message : String(error) })
      }
    })
  })
  reply({ type: 'ready' })
} catch (error) {
  reply({
    type: 'failed',
    message: error instanceof Error ? error.message : String(error),
    missing: Boolean((error as { missing?: boolean }).missing),
  })
}
