import { loadConfig } from '../../config/file.ts'
import { ConfigError, type Problem } from '../../errors.ts'
import { EXIT, type CommandSpec } from '../command.ts'
import { DEPLOYMENT_OPTIONS, str } from './status.ts'

/**
 * `ragstream promote <topology> <version>` — points the analyst view at a version, atomically.
 *
 * @example
 * ```sh
 * ragstream promote support-copilot v2             # rag."support-copilot" now reads v2
 * ragstream promote support-copilot v2 --drop-old  # … and drops every other version's tables
 * ```
 */
export const promoteCommand: CommandSpec = {
  name: 'promote',
  summary:
    "Switch a topology's analyst view to a version in one transaction; --drop-old drops the other versions' tables.",
  args: '<topology> <version>',
  options: {
    'sql-topology': DEPLOYMENT_OPTIONS['sql-topology'],
    'drop-old': {
      type: 'boolean',
      description: 'after the switch, drop the chunk and tombstone tables of every other version',
    },
  },
  details: [
    'Runs as the owner role (/postgres/ownerUrl, RAGSTREAM_POSTGRES_OWNER_URL). The switch is CREATE OR REPLACE VIEW',
    'in one transaction: a query sees the old version or the new one, never a mix or nothing. Rolling back is',
    'promoting the previous version again, as long as it was not dropped. --drop-old runs after the switch, in',
    'its own transaction; Kafka topics and consumer groups of dropped versions are left to the operator',
    '(docs/operations.md lists them).',
    'Exit codes: 0 promoted, 1 failure, 78 unknown version or bad arguments.',
  ].join('\n'),
  async run({ positionals, values, stdout, env, config: given }) {
    const config = given ?? loadConfig({ env })
    const problems: Problem[] = []
    const [topology, version] = positionals
    if (topology === undefined || version === undefined || positionals.length > 2)
      problems.push({ path: '<topology> <version>', message: 'a topology name and a version are required' })
    if (problems.length > 0) throw new ConfigError(problems, 'arguments')
    const { deployment } = await import('../../ops/deployment.ts')
    const { promoteVersion } = await import('../../ops/index-versions.ts')
    const { connectPostgres } = await import('../../ops/pipeline.ts')
    const { loadApp } = await import('../../app/load.ts')
    const d = deployment({
      app: await loadApp(topology!, config.apps),
      version: version!,
      sqlTopology: str(values, 'sql-topology'),
      config,
    })
    const owner = await connectPostgres(config.postgres.ownerUrl, 'ragstream-promote')
    try {
      const result = await promoteVersion(owner, d.sink, { dropOld: Boolean(values['drop-old']) })
      stdout.write(
        `${d.sink.names.view} now reads ${d.sink.topology}@${result.active}${result.previous && result.previous !== result.active ? ` (was ${result.previous})` : ''}\n`,
      )
      if (result.dropped.length > 0)
        stdout.write(`dropped ${result.dropped.map((v) => `${d.sink.topology}@${v}`).join(', ')}\n`)
      return EXIT.ok
    } finally {
      await owner.end().catch(() => {})
    }
  },
}
