/**
 * Finds the app a command names: a topology file, a name from `/apps` of the config file, or one of
 * the reference apps shipped with the package (loaded by path, so `src/` imports none of them).
 */
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ConfigError, RagstreamError } from '../errors.ts'
import { isTopology, type Topology } from '../topology/topology.ts'
import { isApp, type App } from './app.ts'

/** The apps shipped with the package, by name (`ragstream demo` runs the first). */
export const REFERENCE_APPS = ['support-copilot', 'knowledge-base'] as const

const looksLikeFile = (ref: string): boolean => /[\\/]/.test(ref) || /\.(?:[cm]?ts|[cm]?js)$/.test(ref)

/** The file of a reference app: in the package's topologies folder (`.ts` from a checkout, `.js` when built). */
export function referenceAppFile(name: (typeof REFERENCE_APPS)[number]): string {
  const here = fileURLToPath(import.meta.url)
  const ext = here.endsWith('.ts') ? '.ts' : '.js'
  return join(dirname(here), '..', '..', 'topologies', `${name}${ext}`)
}

/** Imports a topology file and returns its default export: an App or a (legacy) Topology. */
export async function importTopologyFile(file: string): Promise<unknown> {
  const path = resolve(file)
  if (!existsSync(path))
    throw new ConfigError(
      [{ path: file, message: 'no such file' }],
      'topology file',
      'RS_CONFIG_INVALID',
      '`ragstream new <name>` scaffolds one; paths are relative to the working directory',
    )
  try {
    return ((await import(pathToFileURL(path).href)) as { default?: unknown }).default
  } catch (error) {
    if (error instanceof RagstreamError) throw error
    const code = (error as NodeJS.ErrnoException).code
    throw new ConfigError(
      [{ path: file, message: `cannot load: ${(error as Error).message}` }],
      'topology file',
      'RS_CONFIG_INVALID',
      code === 'ERR_UNKNOWN_FILE_EXTENSION'
        ? `this Node.js (${process.version}) cannot run TypeScript files: use Node.js 24 or later`
        : code === 'ERR_MODULE_NOT_FOUND'
          ? "a module it imports is missing: is ragstream installed in the file's project (npm install ragstream)?"
          : undefined,
    )
  }
}

export interface AppRef {
  /** What the user passed. */
  readonly ref: string
  readonly file: string
}

/** Where the app a command names lives: a file path, a name of `/apps` in the config file, or a reference app. */
export function resolveAppRef(ref: string, apps: Readonly<Record<string, string>> = {}): AppRef {
  if (Object.hasOwn(apps, ref)) return { ref, file: apps[ref]! }
  if (looksLikeFile(ref)) return { ref, file: ref }
  if ((REFERENCE_APPS as readonly string[]).includes(ref))
    return { ref, file: referenceAppFile(ref as (typeof REFERENCE_APPS)[number]) }
  const known = [...Object.keys(apps), ...REFERENCE_APPS]
  throw new ConfigError(
    [{ path: '<app>', message: `${JSON.stringify(ref)} is neither a file nor a known app (${known.join(', ')})` }],
    'arguments',
    'RS_CONFIG_INVALID',
    'pass a topology file (e.g. src/reviews.ts), or name it in the config file: { "apps": { "reviews": "src/reviews.ts" } }',
  )
}

/** Loads what a file default-exports: an App, or a Topology built by the DSL (the older surface). */
export async function loadAppOrTopology(ref: string, apps?: Readonly<Record<string, string>>): Promise<App | Topology> {
  const { file } = resolveAppRef(ref, apps)
  const exported = await importTopologyFile(file)
  if (isApp(exported) || isTopology(exported)) return exported
  throw new ConfigError(
    [
      {
        path: file,
        message: 'must default-export an app: export default defineApp({ name, build(deployment) { … } })',
      },
    ],
    'topology file',
    'RS_CONFIG_INVALID',
    'see docs/your-own-topology.md',
  )
}

/** Loads the App a command names; a file exporting a bare Topology is refused with a hint. */
export async function loadApp(ref: string, apps?: Readonly<Record<string, string>>): Promise<App> {
  const loaded = await loadAppOrTopology(ref, apps)
  if (isApp(loaded)) return loaded
  throw new ConfigError(
    [
      {
        path: resolveAppRef(ref, apps).file,
        message: `default-exports a bare topology (${loaded.applicationId}); this command needs an app (its name, SQL name and versions)`,
      },
    ],
    'topology file',
    'RS_CONFIG_INVALID',
    'wrap it: export default defineApp({ name, build: (d) => … }) (docs/your-own-topology.md)',
  )
}
