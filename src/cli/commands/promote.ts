import { loadConfig } from '../../config/file.ts'
import { ConfigError, RagstreamError, type Problem } from '../../errors.ts'
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
  args: '<app> <version>',
  options: {
    name: DEPLOYMENT_OPTIONS.name,
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
    '(docs/operations.md lists them). --drop-old refuses (RS_VERSION_IN_USE, nothing changed) while the sink group',
    'of a version it would drop (ragstream-sink.<sql>.<version>) has members: stop that sink first.',
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
      if (values['drop-old']) {
        // Dropping a table under a running sink kills it (`relation … does not exist`): refuse while
        // the sink group of any version to drop has members, before changing anything.
        const { listVersions } = await import('../../ops/index-versions.ts')
        const { groupStates } = await import('../../ops/group-members.ts')
        const { Admin } = await import('@platformatic/kafka')
        const others = (await listVersions(owner, d.sink)).filter((v) => v.version !== d.version)
        const admin = new Admin({ clientId: 'ragstream-promote', bootstrapBrokers: [...config.endpoints.kafkaBrokers] })
        try {
          const groups = others.map((v) => d.app.names(v.version).sinkGroup)
          const busy = (await groupStates(admin, groups)).filter((g) => g.members.length > 0)
          if (busy.length > 0)
            throw new RagstreamError(
              'RS_VERSION_IN_USE',
              `not promoting: --drop-old would drop ${busy.map((g) => `${g.group} (${g.members.length} member${g.members.length === 1 ? '' : 's'}: ${g.members.map((m) => `${m.clientId}@${m.host}`).join(', ')})`).join('; ')} while its sink still runs`,
              {
                context: { path: '--drop-old' },
                hint: `stop that sink first (its table is ${others.map((v) => d.app.names(v.version).chunkTable).join(', ')}), or promote without --drop-old now and drop later`,
              },
            )
        } finally {
          await admin.close().catch(() => {})
        }
      }
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
