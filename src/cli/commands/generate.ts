import { ConfigError } from '../../errors.ts'
import { endpointsFromEnv } from '../../config/endpoints.ts'
import { checkKafka } from '../../config/services.ts'
import { generate, generatorTopics } from '../../generator/generator.ts'
import { EXIT, type CommandSpec } from '../command.ts'

function intOption(values: Record<string, unknown>, name: string, min: number): number {
  const raw = String(values[name])
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min)
    throw new ConfigError([{ path: `--${name}`, message: `expected an integer ≥ ${min}, got '${raw}'` }], 'arguments')
  return n
}

/** `ragstream generate` — realistic, seeded Debezium change events for the support-copilot tables. */
export const generateCommand: CommandSpec = {
  name: 'generate',
  summary: 'Write realistic Debezium CDC events (customers, tickets, products) to Kafka: backfill, then trickle.',
  options: {
    seed: {
      type: 'string',
      default: '42',
      value: '<n>',
      description: 'random seed: the same seed gives the same records',
    },
    prefix: {
      type: 'string',
      default: 'support',
      value: '<name>',
      description: 'topic prefix (Debezium server name): <prefix>.public.tickets, …',
    },
    backfill: { type: 'string', default: '1000', value: '<n>', description: 'tickets in the initial snapshot (op=r)' },
    rate: {
      type: 'string',
      default: '20',
      value: '<n/s>',
      description: 'live changes per second after the backfill; 0 stops after it',
    },
    changes: { type: 'string', value: '<n>', description: 'stop after this many live changes (default: until Ctrl-C)' },
    'malformed-rate': {
      type: 'string',
      default: '0.01',
      value: '<0..1>',
      description: 'share of malformed records in the trickle',
    },
    'with-schema': {
      type: 'boolean',
      default: false,
      description: 'wrap keys and values in the JsonConverter schema/payload envelope',
    },
    'create-topics': { type: 'boolean', default: false, description: 'create missing topics (compacted)' },
    partitions: { type: 'string', default: '3', value: '<n>', description: 'partitions for --create-topics' },
  },
  details: [
    'Topics: <prefix>.public.customers and <prefix>.public.tickets (Debezium JSON envelopes; deletes are',
    'followed by tombstones; primary-key changes are delete + tombstone + create) and <prefix>.products',
    '(plain JSON upserts). Ticket texts carry seeded PII (emails, phones, card numbers, IBANs).',
    '',
    'Example: ragstream generate --create-topics --backfill 10000 --rate 50',
    'Exit codes: 0 done, 69 Kafka unreachable, 78 bad option.',
  ].join('\n'),
  async run({ values, stderr, env }) {
    const seed = intOption(values, 'seed', 0)
    const backfill = intOption(values, 'backfill', 0)
    const rate = intOption(values, 'rate', 0)
    const partitions = intOption(values, 'partitions', 1)
    const changes = values.changes === undefined ? undefined : intOption(values, 'changes', 0)
    const malformedRate = Number(values['malformed-rate'])
    if (!(malformedRate >= 0 && malformedRate <= 1))
      throw new ConfigError(
        [
          {
            path: '--malformed-rate',
            message: `expected a number in [0, 1], got '${String(values['malformed-rate'])}'`,
          },
        ],
        'arguments',
      )
    const server = String(values.prefix)
    if (!/^[A-Za-z0-9._-]{1,200}$/.test(server))
      throw new ConfigError([{ path: '--prefix', message: 'use letters, digits, ".", "_" and "-" only' }], 'arguments')
    const endpoints = endpointsFromEnv(env)
    await checkKafka(endpoints)
    const controller = new AbortController()
    const stop = (): void => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    stderr.write(`generating into ${generatorTopics(server).join(', ')} (seed ${seed})\n`)
    try {
      const result = await generate({
        brokers: endpoints.kafkaBrokers,
        seed,
        server,
        withSchema: Boolean(values['with-schema']),
        backfill,
        rate,
        changes,
        malformedRate,
        createTopics: values['create-topics'] ? { partitions } : undefined,
        signal: controller.signal,
        onProgress: (p) =>
          stderr.write(
            `${p.phase}: ${p.records} records, ${p.changes} live changes, ${p.malformed} malformed, ${(p.records / Math.max(1, p.elapsedMs / 1000)).toFixed(0)} records/s\n`,
          ),
      })
      stderr.write(`done: ${JSON.stringify(result.byKind)}\n`)
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    }
    return EXIT.ok
  },
}
