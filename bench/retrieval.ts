// Retrieval quality and embedding cost of every embedding provider this machine can run.
//   node bench/retrieval.ts          (or: npm run bench -- retrieval)   needs no service
//   BENCH_WORKERS=1,2                worker counts of the throughput part (default 1,2)
//   BENCH_CHUNKS=256                 chunks per throughput run (default 256, ~100 tokens each)
//
// Quality: the labelled set in bench/_retrieval-set.ts (300 support tickets, 100 paraphrase queries,
// 10 topic queries, 20 keyword queries). Each provider embeds the tickets as passages and the
// queries through providerForModel (as `ragstream query` does: the model's query prefix where it has
// one), ranks by cosine, and reports per query kind recall@5 (relevant in the top 5 ÷ min(5,
// relevant)), MRR (1 ÷ rank of the first relevant) and hit@1. Hashing is the baseline in the same run.
//
// Cost: each installed local model embeds BENCH_CHUNKS chunk-sized texts with 1, 2, … workers after a
// warm-up (workers started, model loaded): embeddings/s (wall), CPU-ms per chunk (the workers' own
// thread CPU, tokenisation included) and the main event loop's delay p99 while it ran (worker
// threads keep it free). Local models not installed are listed with the command that installs them.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createEmbeddingProvider, providerForModel } from '../src/embedding/config.ts'
import { Embedder } from '../src/embedding/embedder.ts'
import { LocalProvider } from '../src/embedding/local.ts'
import { LOCAL_MODELS, localModelInstalled, type LocalModelId } from '../src/embedding/models.ts'
import type { EmbeddingProvider } from '../src/embedding/provider.ts'
import { retrievalSet, type RetrievalQuery } from './_retrieval-set.ts'

const WORKERS = (process.env.BENCH_WORKERS ?? '1,2').split(',').map(Number)
const CHUNKS = Number(process.env.BENCH_CHUNKS ?? 256)
const KINDS = ['paraphrase', 'topic', 'keyword'] as const

const { documents, queries } = retrievalSet()

async function embedAll(provider: EmbeddingProvider, texts: readonly string[]): Promise<Float32Array[]> {
  const out: Float32Array[] = []
  for (let at = 0; at < texts.length; at += provider.maxBatchItems) {
    const { vectors } = await provider.embedBatch(texts.slice(at, at + provider.maxBatchItems))
    for (const v of vectors) out.push(Float32Array.from(v))
  }
  return out
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

interface Scores {
  recall5: number
  mrr: number
  hit1: number
  n: number
}

function score(docVectors: Float32Array[], queryVectors: Float32Array[], list: readonly RetrievalQuery[]): Scores {
  const s = { recall5: 0, mrr: 0, hit1: 0, n: list.length }
  list.forEach((query, q) => {
    const ranked = docVectors
      .map((v, i) => [dot(v, queryVectors[q]), i] as const)
      .sort((a, b) => b[0] - a[0] || a[1] - b[1])
      .map(([, i]) => documents[i].id)
    const relevant = new Set(query.relevant)
    s.recall5 += ranked.slice(0, 5).filter((id) => relevant.has(id)).length / Math.min(5, relevant.size)
    s.mrr += 1 / (ranked.findIndex((id) => relevant.has(id)) + 1)
    s.hit1 += relevant.has(ranked[0]) ? 1 : 0
  })
  return { recall5: s.recall5 / s.n, mrr: s.mrr / s.n, hit1: s.hit1 / s.n, n: s.n }
}

const installed = (Object.keys(LOCAL_MODELS) as LocalModelId[]).filter((id) => localModelInstalled(id))
const missing = (Object.keys(LOCAL_MODELS) as LocalModelId[]).filter((id) => !localModelInstalled(id))

console.log(
  `retrieval set: ${documents.length} documents, ${KINDS.map((k) => `${queries.filter((q) => q.kind === k).length} ${k}`).join(', ')} queries`,
)
if (missing.length > 0)
  console.log(`not installed (node scripts/fetch-models.ts ${missing.join(' ')}): ${missing.join(', ')}`)
console.log('')
console.log('provider                            kind        n  recall@5    MRR  hit@1   vs hashing recall@5')
const baseline = new Map<string, number>()
for (const passages of [
  createEmbeddingProvider({ kind: 'hashing', dimensions: 384 }),
  ...installed.map((model) => createEmbeddingProvider({ kind: 'local', model, workers: 2 })),
]) {
  const id = new Embedder(passages).model
  const query = providerForModel(id)
  const docVectors = await embedAll(
    passages,
    documents.map((d) => d.text),
  )
  for (const kind of KINDS) {
    const list = queries.filter((q) => q.kind === kind)
    const s = score(
      docVectors,
      await embedAll(
        query,
        list.map((q) => q.text),
      ),
      list,
    )
    if (id.startsWith('hashing:')) baseline.set(kind, s.recall5)
    const ratio = s.recall5 / (baseline.get(kind) ?? s.recall5)
    console.log(
      `${id.padEnd(35)} ${kind.padEnd(10)} ${String(s.n).padStart(3)}  ${s.recall5.toFixed(3).padStart(8)} ${s.mrr.toFixed(3).padStart(6)} ${s.hit1.toFixed(3).padStart(6)}   ${ratio.toFixed(2)}×`,
    )
  }
  await passages.close?.()
  await query.close?.()
}

// Chunk-sized texts (~100 tokens): four tickets each, rotated so every text differs.
const chunkTexts = Array.from({ length: CHUNKS }, (_, i) =>
  [0, 1, 2, 3].map((k) => documents[(i * 7 + k * 31) % documents.length].text).join(' '),
)
const hashingStart = performance.now()
const hashingCpu = process.cpuUsage()
await createEmbeddingProvider({ kind: 'hashing', dimensions: 384 }).embedBatch(chunkTexts)
const hashingUsed = process.cpuUsage(hashingCpu)
const hashingRate = CHUNKS / ((performance.now() - hashingStart) / 1000)

console.log('')
console.log(
  `throughput, ${CHUNKS} chunks of ~${Math.round(chunkTexts.reduce((s, t) => s + t.length, 0) / CHUNKS / 4)} approximate tokens each`,
)
console.log('model                       workers  embeddings/s  CPU-ms/chunk  tokens/chunk  loop delay p99')
console.log(
  `${'hashing:v1@384'.padEnd(27)} ${'main'.padStart(7)}  ${hashingRate.toFixed(0).padStart(12)}  ${((hashingUsed.user + hashingUsed.system) / 1000 / CHUNKS).toFixed(3).padStart(12)}`,
)
for (const model of installed) {
  for (const workers of WORKERS) {
    const provider = new LocalProvider({ kind: 'local', model, workers })
    await provider.embedBatch(chunkTexts.slice(0, 4 * workers)) // start the workers, load the model
    const delay = monitorEventLoopDelay({ resolution: 5 })
    delay.enable()
    const started = performance.now()
    let cpuMs = 0
    let tokens = 0
    for (let at = 0; at < CHUNKS; at += provider.maxBatchItems) {
      const result = await provider.embedBatch(chunkTexts.slice(at, at + provider.maxBatchItems))
      cpuMs += result.cpuMs ?? 0
      tokens += result.tokens ?? 0
    }
    const seconds = (performance.now() - started) / 1000
    delay.disable()
    await provider.close()
    console.log(
      `${`local:${model}`.padEnd(27)} ${String(workers).padStart(7)}  ${(CHUNKS / seconds).toFixed(0).padStart(12)}  ${(cpuMs / CHUNKS).toFixed(2).padStart(12)}  ${(tokens / CHUNKS).toFixed(0).padStart(12)}  ${(delay.percentile(99) / 1e6).toFixed(1).padStart(11)} ms`,
    )
  }
}
