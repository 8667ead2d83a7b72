import { connectPostgres } from '../../config/services.ts'
import { EXIT, type CommandSpec } from '../command.ts'
import { endpointsFromEnv } from '../../config/endpoints.ts'
import { ConfigError } from '../../errors.ts'
import { jsonSafe } from '../../security/terminal.ts'
import type { Distance } from '../../sink/config.ts'
import { checkIdentifier, qualified } from '../../sink/identifiers.ts'

function parseVector(raw: string): number[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    parsed = undefined
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length === 0 ||
    !parsed.every((x) => typeof x === 'number' && Number.isFinite(x))
  ) {
    throw new ConfigError(
      [{ path: '--vector', message: 'must be a JSON array of finite numbers, e.g. [0.1, 0.2]' }],
      'arguments',
    )
  }
  return parsed as number[]
}

/** The query text's embedding with the model the rows were embedded with (read from the rows themselves). */
async function embedLikeTheRows(text: string, model: string, env: NodeJS.ProcessEnv): Promise<number[]> {
  const { providerForModel } = await import('../../embedding/config.ts')
  const provider = providerForModel(model, env)
  try {
    const { vectors } = await provider.embedBatch([text])
    return Array.from(vectors[0])
  } finally {
    await provider.close?.()
  }
}

/**
 * `ragstream query "<text>" --topology <name>` — nearest neighbours from the topology's view, as
 * the connecting role sees them (row-level security applies).
 *
 * @example
 *   ragstream query "refund for a damaged parcel" --topology support -k 5 --where tenant=acme --where priority=high
 */
export const queryCommand: CommandSpec = {
  name: 'query',
  summary: "Nearest-neighbour search over a topology's pgvector view (as your role sees it).",
  args: '"<text>"',
  options: {
    app: {
      type: 'string',
      value: '<app>',
      description: 'the app whose view to search (topology file, /apps name or reference name)',
    },
    topology: { type: 'string', value: '<name>', description: 'or the SQL name of the view to search' },
    k: { type: 'string', short: 'k', value: '<n>', description: 'how many neighbours', default: '5' },
    where: {
      type: 'string',
      multiple: true,
      value: '<key=value>',
      description:
        'filter (repeatable, all must hold): a column (entity_type, entity_key, classification, tenant, region) or a metadata key; never SQL',
    },
    vector: {
      type: 'string',
      value: '<json>',
      description: 'query vector as a JSON array instead of embedding the text',
    },
    distance: {
      type: 'string',
      value: '<cosine|l2|inner_product>',
      description: 'distance the topology was indexed with',
      default: 'cosine',
    },
    'view-schema': { type: 'string', value: '<name>', description: 'schema of the analyst views', default: 'rag' },
    'postgres-url': {
      type: 'string',
      value: '<url>',
      description: 'connection URL of your (analyst) role (default $RAGSTREAM_POSTGRES_URL)',
    },
    json: { type: 'boolean', description: 'print rows as JSON lines instead of a table' },
  },
  details: `The text is embedded with the model recorded on the rows (hashing:v1 built in; local:<model> installed by
npm run setup; openai:<model> with its API key in the environment, base URL in RAGSTREAM_EMBEDDING_URL); any other
model needs --vector. --where clauses are bound as parameters: a column
comparison or a jsonb containment test on metadata (metadata @> '{"key": value}'); values parse as JSON scalars
when they can (42, true, "007"), else as strings; dots nest keys (customer.tier=gold).
docs/sql.md shows the same query as plain SQL.
Exit codes: 0 ok (also when nothing matches), 1 failure, 78 bad arguments.`,
  async run({ positionals, values, stdout, env, config: given }) {
    const text = positionals[0]
    if (text === undefined) throw new ConfigError([{ path: '"<text>"', message: 'required' }], 'arguments')
    let sqlName: string | undefined = typeof values.topology === 'string' ? values.topology : undefined
    let viewSchemaDefault = 'rag'
    if (typeof values.app === 'string') {
      const config = given ?? (await import('../../config/file.ts')).loadConfig({ env })
      const app = await (await import('../../app/load.ts')).loadApp(values.app, config.apps)
      sqlName ??= app.sqlName
      viewSchemaDefault = config.sink.viewSchema
    }
    if (sqlName === undefined)
      throw new ConfigError(
        [{ path: '--app', message: 'required: the app (or --topology, its SQL name)' }],
        'arguments',
      )
    const topology = checkIdentifier('--topology', sqlName, 'topology-name')
    const viewSchema = checkIdentifier(
      '--view-schema',
      values['view-schema'] === undefined || values['view-schema'] === 'rag'
        ? viewSchemaDefault
        : values['view-schema'],
    )
    const k = Number(values.k ?? '5')
    if (!Number.isInteger(k) || k < 1 || k > 1000)
      throw new ConfigError([{ path: '-k', message: 'must be an integer from 1 to 1000' }], 'arguments')
    const distance = String(values.distance ?? 'cosine') as Distance
    if (!['cosine', 'l2', 'inner_product'].includes(distance))
      throw new ConfigError([{ path: '--distance', message: 'must be cosine, l2 or inner_product' }], 'arguments')
    const { parseWhere, nearestNeighbours, formatNeighbours } = await import('../../sink/query.ts')
    const filter = parseWhere((values.where as string[] | undefined) ?? [])
    const view = qualified(viewSchema, topology)
    const url = typeof values['postgres-url'] === 'string' ? values['postgres-url'] : endpointsFromEnv(env).postgresUrl
    const client = await connectPostgres(url, 'ragstream-query')
    try {
      let vector: number[]
      if (typeof values.vector === 'string') vector = parseVector(values.vector)
      else {
        const sample = await client.query<{ embedding_model: string; dims: number }>(
          `SELECT embedding_model, vector_dims(embedding) AS dims FROM ${view} LIMIT 1`,
        )
        if (sample.rowCount === 0) {
          if (!values.json) stdout.write('no rows visible to this role\n')
          return EXIT.ok
        }
        vector = await embedLikeTheRows(text, sample.rows[0].embedding_model, env)
      }
      const rows = await nearestNeighbours(client, { view, distance, vector, filter, k })
      if (values.json) for (const row of rows) stdout.write(`${jsonSafe(JSON.stringify(row))}\n`)
      else stdout.write(rows.length === 0 ? 'no matching rows\n' : formatNeighbours(rows))
      return EXIT.ok
    } finally {
      await client.end().catch(() => {})
    }
  },
}
