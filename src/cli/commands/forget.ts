import { hostname, userInfo } from 'node:os'
import { connectPostgres } from '../../config/services.ts'
import { EXIT, type CommandSpec } from '../command.ts'
import { endpointsFromEnv } from '../../config/endpoints.ts'
import { ConfigError, RagstreamError, ServiceUnavailableError } from '../../errors.ts'
import { deletionRequestedAudit } from '../../governance/forget/deletion-audit.ts'
import { buildDeletionRequest, type DeletionRequestValue } from '../../governance/forget/deletion-request.ts'
import { DEAD_LETTER_TOPIC_CONFIG, deadLetterRetentionOf } from '../../governance/forget/dead-letter.ts'
import { formatReceipt, receiptJson } from '../../governance/forget/receipt.ts'
import type { SuppressionMode } from '../../governance/forget/suppression.ts'
import { hashSubject } from '../../governance/subject.ts'
import { jsonSafe, terminalSafe } from '../../security/terminal.ts'
import { resolveSinkConfig } from '../../sink/config.ts'

/** The default governance deletions topic. */
export const DEFAULT_DELETIONS_TOPIC = 'governance.deletions'

/**
 * `ragstream forget --subject customer:42 --reason "…" [--wait]` — produces a deletion request
 * (Avro, schemas/deletion-request.avsc) to the deletions topic, keyed by subject; with `--wait`, waits
 * for the receipt: every processor partition applied it and the sink deleted the subject's rows in
 * every index version, in the transaction that wrote the audit rows.
 *
 * @example
 *   ragstream forget --subject customer:42 --reason "GDPR art. 17 request #981" --topology support --wait
 */
export const forgetCommand: CommandSpec = {
  name: 'forget',
  summary: 'Forget a data subject everywhere (chunks, stores, every index version) and print the receipt.',
  options: {
    subject: { type: 'string', value: '<type:id>', description: 'the data subject, e.g. customer:42 (required)' },
    reason: {
      type: 'string',
      value: '<text>',
      description: 'why (kept on the deletions topic only; audit rows hold ids and counts) (required)',
    },
    'requested-by': { type: 'string', value: '<who>', description: 'who asks (default: user@host)' },
    'request-id': {
      type: 'string',
      value: '<id>',
      description: 'idempotency key; default a random UUID (re-run with the same id to get the receipt again)',
    },
    mode: {
      type: 'string',
      value: '<FOREVER|BEFORE_REQUEST>',
      description:
        'suppress forever, or only data older than the request (a topology configured FOREVER stays FOREVER)',
      default: 'FOREVER',
    },
    'deletions-topic': {
      type: 'string',
      value: '<topic>',
      description: 'the governance deletions topic the topology reads',
      default: DEFAULT_DELETIONS_TOPIC,
    },
    app: {
      type: 'string',
      value: '<app>',
      description:
        'the app (topology file, /apps name or reference name): its deletions topic and, with --wait, its tables',
    },
    prefix: { type: 'string', value: '<prefix>', description: "with --app: the app's source prefix" },
    topology: {
      type: 'string',
      value: '<name>',
      description: 'sink topology (its tables in Postgres): required with --wait unless --app names it',
    },
    processor: {
      type: 'string',
      value: '<application id>',
      description: 'only count confirmations of this processor topology (default: any)',
    },
    wait: { type: 'boolean', description: 'wait for the receipt' },
    timeout: { type: 'string', value: '<s>', description: 'how long --wait waits', default: '120' },
    schema: { type: 'string', value: '<name>', description: 'schema of the sink tables', default: 'ragstream' },
    'postgres-url': {
      type: 'string',
      value: '<url>',
      description: 'owner or auditor role for --wait (reads the audit table) (default $RAGSTREAM_POSTGRES_URL)',
    },
    json: { type: 'boolean', description: 'print the receipt as JSON' },
  },
  details: `Exactly one receipt per request: the DELETION_CONFIRMED audit row's id derives from the request id.
The subject appears in the receipt only as its sha256; the verification query binds it as $1 (run it
as a role that row-level security lets see every row, e.g. the sink role: it returns 0).
Exit codes: 0 requested (and confirmed with --wait), 1 failure, 69 Kafka/registry/Postgres unreachable,
78 bad arguments; RS_FORGET_UNCONFIRMED when --timeout passes first.`,
  async run({ values, stdout, env, config: given }) {
    let appTopic: string | undefined
    let appSql: string | undefined
    if (typeof values.app === 'string') {
      const config = given ?? (await import('../../config/file.ts')).loadConfig({ env })
      const { loadApp } = await import('../../app/load.ts')
      const { deployment } = await import('../../ops/deployment.ts')
      const d = deployment({
        app: await loadApp(values.app, config.apps),
        version: 'v1',
        prefix: typeof values.prefix === 'string' ? values.prefix : undefined,
        config,
      })
      if (d.deletionsTopic === undefined)
        throw new ConfigError(
          [{ path: '--app', message: `${d.app.name} reads no deletions topic: it has nothing to forget` }],
          'arguments',
          'RS_CONFIG_INVALID',
          'declare deletionsTopic in defineApp and a forget section in its govern step (docs/governance.md)',
        )
      appTopic = d.deletionsTopic
      appSql = d.names.sqlName
      values = { schema: config.sink.schema, ...values }
    }
    const mode = String(values.mode ?? 'FOREVER') as SuppressionMode
    const requestedBy =
      typeof values['requested-by'] === 'string' ? values['requested-by'] : `${userInfo().username}@${hostname()}`
    const request = buildDeletionRequest(
      {
        subject: String(values.subject ?? ''),
        reason: String(values.reason ?? ''),
        requestedBy,
        requestedAtMs: Date.now(),
        mode,
        ...(typeof values['request-id'] === 'string' ? { requestId: values['request-id'] } : {}),
      },
      '',
    )
    const timeoutSeconds = Number(values.timeout ?? '120')
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0)
      throw new ConfigError([{ path: '--timeout', message: 'must be a positive number of seconds' }], 'arguments')
    const sinkConfig = values.wait
      ? (() => {
          const topology = typeof values.topology === 'string' ? values.topology : appSql
          if (topology === undefined)
            throw new ConfigError(
              [{ path: '--topology', message: 'required with --wait: whose tables the receipt counts' }],
              'arguments',
            )
          return resolveSinkConfig({ topology, schema: String(values.schema ?? 'ragstream'), dims: 1 })
        })()
      : undefined
    const endpoints = endpointsFromEnv(env)
    const topic =
      values['deletions-topic'] !== undefined && values['deletions-topic'] !== DEFAULT_DELETIONS_TOPIC
        ? String(values['deletions-topic'])
        : (appTopic ?? DEFAULT_DELETIONS_TOPIC)
    const subjectHash = hashSubject(request.subject)
    if (sinkConfig === undefined) {
      await produceRequest(endpoints, topic, request)
      stdout.write(
        values.json
          ? `${jsonSafe(JSON.stringify({ requestId: request.request_id, subjectHash, requestedAtMs: request.requested_at_ms }))}\n`
          : terminalSafe(`forget requested: ${request.request_id} (subject sha256 ${subjectHash}) on ${topic}\n`),
      )
      return EXIT.ok
    }

    const url = typeof values['postgres-url'] === 'string' ? values['postgres-url'] : endpoints.postgresUrl
    const client = await connectPostgres(url, 'ragstream-forget')
    try {
      // Postgres's clock before producing: the receipt counts the subject's rows removed since.
      const sinceDb = (await client.query<{ now: Date }>('SELECT clock_timestamp() AS now')).rows[0].now
      const position = await produceRequest(endpoints, topic, request)
      const names = sinkConfig.names
      const processor = typeof values.processor === 'string' ? values.processor : undefined
      const requested = deletionRequestedAudit(request, processor ?? sinkConfig.topology)
      await client.query(
        `INSERT INTO ${names.auditTable} (event_id, kind, topology, topology_version, request_id, subject_hash, entity_key_hash, reason, counts, at, source_topic, source_partition, source_offset)
         VALUES ($1, $2, $3, NULL, $4, $5, NULL, $6, '{}'::jsonb, to_timestamp($7 / 1000.0), $8, $9, $10) ON CONFLICT (event_id) DO NOTHING`,
        [
          requested.event_id,
          requested.kind,
          requested.topology,
          requested.request_id,
          requested.subject_hash,
          requested.reason,
          requested.at_ms,
          position.topic,
          position.partition,
          position.offset.toString(),
        ],
      )
      const { awaitForgetReceipt } = await import('../../sink/forget-receipt.ts')
      const { receipt } = await awaitForgetReceipt(client, names, {
        requestId: request.request_id,
        subject: request.subject,
        requestedAtMs: request.requested_at_ms,
        ...(processor === undefined ? {} : { topology: processor }),
        source: position,
        sinceDb,
        timeoutMs: timeoutSeconds * 1000,
        deadLetters: deadLetterRetentionOf(DEAD_LETTER_TOPIC_CONFIG),
      })
      stdout.write(values.json ? `${receiptJson(receipt)}\n` : `${formatReceipt(receipt)}\n`)
      return EXIT.ok
    } finally {
      await client.end().catch(() => {})
    }
  },
}

/* The deletion request: key = subject (UTF-8), value = schemas/deletion-request.avsc in the Confluent wire format. */
async function produceRequest(
  endpoints: ReturnType<typeof endpointsFromEnv>,
  topic: string,
  request: DeletionRequestValue,
): Promise<{ topic: string; partition: number; offset: bigint }> {
  const { deletionRequestCodec } = await import('../../governance/forget/governance-codecs.ts')
  const { Admin, Producer } = await import('@platformatic/kafka')
  // A producer to a missing topic retries its metadata for minutes: ask once, and say what is wrong.
  const admin = new Admin({ clientId: 'ragstream-forget', bootstrapBrokers: [...endpoints.kafkaBrokers], retries: 2 })
  let topics: string[]
  try {
    topics = await admin.listTopics()
  } catch (error) {
    throw new ServiceUnavailableError('Kafka', endpoints.kafkaBrokers.join(','), error)
  } finally {
    await admin.close().catch(() => {})
  }
  if (!topics.includes(topic))
    throw new RagstreamError('RS_TOPIC_MISSING', `the deletions topic ${topic} does not exist on the broker`, {
      context: { topic, path: '--deletions-topic' },
      hint: 'pass --deletions-topic with the topic your processors read deletion requests from, or create it (compacted)',
    })
  const codec = deletionRequestCodec({ registryUrl: endpoints.schemaRegistryUrl, topic })
  await codec.open()
  const producer = new Producer({
    clientId: 'ragstream-forget',
    bootstrapBrokers: [...endpoints.kafkaBrokers],
    idempotent: true,
    acks: -1,
  })
  try {
    const sent = await producer.send({
      messages: [{ topic, key: Buffer.from(request.subject, 'utf8'), value: codec.encode(request) }],
    })
    const first = sent.offsets?.[0]
    return { topic, partition: first?.partition ?? -1, offset: BigInt(first?.offset ?? -1) }
  } finally {
    await producer.close()
  }
}
