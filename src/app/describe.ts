/**
 * The topology of an app's version as `ragstream describe` prints it: built with services that connect
 * nothing (describing needs no broker, Redis or registry).
 */
import { RagServices } from '../config/rag-services.ts'
import type { DescribeFormat } from '../topology/describe.ts'
import type { Topology } from '../topology/topology.ts'
import type { App } from './app.ts'

/** Builds one version of an app with lazily connecting services (closed before returning). */
export function appTopology(
  app: App,
  options: { version?: string; prefix?: string; env?: NodeJS.ProcessEnv } = {},
): Topology {
  const env = options.env ?? process.env
  const services = RagServices.fromEnv({ chunkTopic: app.names(options.version).chunkTopic, env })
  try {
    return app.deploy({ ...options, env, services }).topology
  } finally {
    void services.close()
  }
}

/** `ragstream describe` of one version of an app (default v1, the app's source prefix). */
export function describeApp(
  app: App,
  format: DescribeFormat = 'text',
  options: { version?: string; prefix?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  return appTopology(app, options).describe(format)
}
