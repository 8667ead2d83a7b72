/**
 * Files shipped beside the code (Avro schemas, package.json, scripts/), found from the package root
 * whether the code runs from `src/` (a checkout, TypeScript run directly) or from `dist/src/` (the
 * built package under node_modules): the root is the nearest directory above with a package.json.
 */
import { existsSync } from 'node:fs'

let root: URL | undefined

function packageRoot(): URL {
  if (root) return root
  for (let dir = new URL('./', import.meta.url); ; dir = new URL('../', dir)) {
    if (existsSync(new URL('package.json', dir))) return (root = dir)
    if (dir.pathname === '/') throw new Error(`no package.json above ${import.meta.url}`)
  }
}

/** A file of the package by its path from the package root, e.g. `schemas/chunk-event.avsc`. */
export function packageFile(path: string): URL {
  return new URL(path, packageRoot())
}
