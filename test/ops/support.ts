// Fixtures for the operations tests: an isolated configuration (own schemas, roles, Kafka name base,
// Redis key prefixes) and a cleanup that removes everything a run under it created.
import { randomUUID } from 'node:crypto'
import { Admin } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import pg from 'pg'
import { loadConfig, type RagstreamConfig } from '../../src/config/file.ts'
import { quoteIdent } from '../../src/sink/identifiers.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import { endpoints } from '../support/stack.ts'
import { deleteKeys } from '../support/local.ts'

type After = { after: (fn: () => Promise<void>) => void }

export interface OpsEnv {
  readonly suffix: string
  readonly env: NodeJS.ProcessEnv
  readonly config: RagstreamConfig
  /** Kafka name base: every topic, group and Redis key of the test starts with it (or rag.chunks.<it>). */
  readonly name: string
  readonly sqlTopology: string
  readonly analystRole: string
  readonly cachePrefix: string
}

export function opsEnv(t: After, extra: NodeJS.ProcessEnv = {}): OpsEnv {
  const suffix = randomUUID().replaceAll('-', '').slice(0, 10)
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RAGSTREAM_SINK_SCHEMA: `rs_${suffix}`,
    RAGSTREAM_SINK_VIEW_SCHEMA: `rv_${suffix}`,
    RAGSTREAM_SINK_OWNER_ROLE: `rs_owner_${suffix}`,
    RAGSTREAM_SINK_ROLE: `rs_sink_${suffix}`,
    ...extra,
  }
  const o: OpsEnv = {
    suffix,
    env,
    config: loadConfig({ env }),
    name: `ops-${suffix}`,
    sqlTopology: `t${suffix}`,
    analystRole: `rs_analyst_${suffix}`,
    cachePrefix: `rs-test-emb-${suffix}`,
  }
  t.after(() => cleanupOps(o))
  return o
}

export async function cleanupOps(o: OpsEnv): Promise<void> {
  const admin = new Admin({ clientId: `cleanup-${o.suffix}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
  try {
    const topics = (await admin.listTopics()).filter(
      (t) => t.startsWith(o.name) || t.startsWith(`rag.chunks.${o.name}`),
    )
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {})
    const groups = [...(await admin.listGroups()).keys()].filter(
      (g) => g.startsWith(o.name) || g.startsWith(`ragstream-sink.${o.sqlTopology}.`),
    )
    if (groups.length > 0) await admin.deleteGroups({ groups }).catch(() => {})
    for (const t of topics.filter((t) => t.startsWith('rag.chunks.'))) await deleteSubject(`${t}-value`).catch(() => {})
  } finally {
    await admin.close().catch(() => {})
  }
  const redis = new Redis(endpoints.redisUrl)
  try {
    await deleteKeys(redis, `rs:{${o.name}*`)
    await deleteKeys(redis, `${o.cachePrefix}:*`)
  } finally {
    redis.disconnect()
  }
  const client = new pg.Client({ connectionString: endpoints.postgresUrl })
  client.on('error', () => {})
  await client.connect()
  try {
    for (const role of [o.analystRole, o.config.sink.sinkRole, o.config.sink.ownerRole]) {
      await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [role])
      await client.query(`DROP OWNED BY ${quoteIdent(role)} CASCADE`).catch(() => {})
      await client.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`).catch(() => {})
    }
  } finally {
    await client.end()
  }
}

/** read_committed end == high watermark on every partition: no transaction is left open on `topic`. */
export async function openTransactionPartitions(topic: string, partitions: number): Promise<number[]> {
  const admin = new Admin({
    clientId: `lso-${randomUUID().slice(0, 8)}`,
    bootstrapBrokers: [...endpoints.kafkaBrokers],
  })
  try {
    const ask = (isolationLevel: 0 | 1) =>
      admin.listOffsets({
        topics: [
          {
            name: topic,
            partitions: Array.from({ length: partitions }, (_, partitionIndex) => ({ partitionIndex, timestamp: -1n })),
          },
        ],
        isolationLevel,
      })
    const [committed, uncommitted] = await Promise.all([ask(1), ask(0)])
    const lso = new Map(committed[0].partitions.map((p) => [p.partitionIndex, p.offset]))
    return uncommitted[0].partitions.filter((p) => lso.get(p.partitionIndex) !== p.offset).map((p) => p.partitionIndex)
  } finally {
    await admin.close()
  }
}

/** Scrapes a Prometheus text endpoint into `name{labels} value` lines. */
export async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  return response.text()
}

/** Sum of a family's samples (`name` exactly, or `name_count` for histograms). */
export function sampleSum(text: string, name: string): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m && m[1] === name) sum += Number(m[3])
  }
  return sum
}
