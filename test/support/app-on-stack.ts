// A compiled app running inside the test's process on the real stack: KafkaRuntime exactly once with
// Redis stores and, given a sink environment, the pgvector sink beside it. Everything the app leaves
// behind (internal topics, consumer groups, registry subjects, Redis keys) is removed after the test.
import { Admin } from '@platformatic/kafka'
import { Redis } from 'ioredis'
import { KafkaRuntime, type KafkaRuntimeOptions, type RuntimeEvent } from '../../src/runtime/kafka-runtime.ts'
import type { ProcessorTopology } from '../../src/runtime/task.ts'
import { PgvectorSink } from '../../src/sink/pgvector-sink.ts'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import { deleteSubject } from '../serde/registry-helpers.ts'
import type { SinkEnv } from '../sink/support.ts'
import { deleteKeys } from './local.ts'
import { endpoints, uniqueName } from './stack.ts'

type After = { after: (fn: () => Promise<void> | void) => void }

export interface AppOnStackOptions {
  readonly applicationId: string
  readonly instanceId: string
  /** Registry subjects the app registers (audit and deletion schemas), deleted after the test. */
  readonly subjects?: readonly string[]
  /** Runtime options over the defaults (6 s session, 50 records a batch, 100 ms fetch wait). */
  readonly runtime?: Partial<KafkaRuntimeOptions>
  /** Runs the pgvector sink of this environment too, stopped with the runtime. */
  readonly sink?: SinkEnv
  /** Other consumer groups the test creates (e.g. a console consumer's), deleted with the app's. */
  readonly groups?: readonly string[]
}

export interface AppOnStack {
  readonly admin: Admin
  readonly redis: Redis
  readonly runtime: KafkaRuntime
  readonly events: RuntimeEvent[]
  /** The app's topics that are neither its sources nor its sinks. */
  readonly internal: ProcessorTopology['topics']
  /** Stops the runtime and waits for it, rejecting if it failed: a test ends with it, before the teardown deletes its topics. */
  stop(): Promise<void>
}

export async function runAppOnStack(
  t: After,
  processor: ProcessorTopology,
  options: AppOnStackOptions,
): Promise<AppOnStack> {
  const { applicationId, sink: sinkEnv } = options
  const internal = processor.topics.filter((x) => x.role !== 'source' && x.role !== 'sink')
  const admin = new Admin({ clientId: uniqueName('app-admin'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  const redis = new Redis(endpoints.redisUrl)
  t.after(async () => {
    await admin.deleteTopics({ topics: internal.map((x) => x.name) }).catch(() => {})
    const groups = [applicationId, ...(sinkEnv ? [sinkEnv.config.groupId] : []), ...(options.groups ?? [])]
    await admin.deleteGroups({ groups }).catch(() => {})
    await admin.close()
    for (const subject of options.subjects ?? []) await deleteSubject(subject).catch(() => {})
    await deleteKeys(redis, `rs:{${applicationId}:*`)
    await redis.quit()
  })

  const backend = new RedisStateBackend({ applicationId, target: { kind: 'single', url: endpoints.redisUrl } })
  t.after(() => backend.close())
  const events: RuntimeEvent[] = []
  const runtime = new KafkaRuntime(processor, {
    brokers: endpoints.kafkaBrokers,
    stores: new Map(processor.storeNames.map((name) => [name, backend.store(name)])),
    instanceId: options.instanceId,
    sessionTimeoutMs: 6_000,
    batchMaxRecords: 50,
    fetchMaxWaitMs: 100,
    onEvent: (e) => events.push(e),
    ...options.runtime,
  })
  const running = runtime.run()
  running.catch(() => {}) // awaited by stop(); a teardown that deletes the topics under it must not report it
  const sink = sinkEnv
    ? new PgvectorSink({
        config: sinkEnv.config,
        postgresUrl: sinkEnv.sinkUrl,
        kafkaBrokers: endpoints.kafkaBrokers,
        schemaRegistryUrl: endpoints.schemaRegistryUrl,
      })
    : undefined
  const sinking = sink?.run()
  sinking?.catch(() => {})
  t.after(async () => {
    runtime.stop()
    sink?.stop()
    await Promise.all([running.catch(() => {}), sinking?.catch(() => {})])
  })
  return {
    admin,
    redis,
    runtime,
    events,
    internal,
    async stop() {
      runtime.stop()
      await running
    },
  }
}
