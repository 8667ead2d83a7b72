/**
 * Runs the counting topology (or, with `topology: 'aggregate'`, the review aggregates of
 * aggregate-topology.ts) under the Kafka runtime in its own process, for the crash, zombie,
 * rebalance, Redis-loss and aggregate differential tests. Configuration comes as JSON in RUNNER_CONFIG; runtime events are
 * printed to stdout as JSON lines. Exit codes: 0 stopped by SIGTERM/SIGINT, 3 fenced, 1 other error.
 *
 *   node_modules/.bin/node test/support/runtime-runner.ts
 */
import { KafkaRuntime, type BatchStage } from '../../src/runtime/kafka-runtime.ts'
import { RagstreamError } from '../../src/errors.ts'
import type { StateStore } from '../../src/state/store.ts'
import { countingTopology } from './counting-topology.ts'
import { reviewAggregates } from './aggregate-topology.ts'
import { MemoryStateStore } from '../../src/state/memory-store.ts'

export interface RunnerConfig {
  readonly brokers: string[]
  readonly applicationId: string
  readonly input: string
  readonly output: string
  readonly instanceId: string
  readonly store: 'memory' | 'redis'
  /** Default 'counting'. 'aggregate' reads `input` as the reviews topic; its outputs are `<applicationId>-counts|stars|top`. */
  readonly topology?: 'counting' | 'aggregate'
  /** Partitions of the aggregate topology's topics (its internal and output topics are created with them). */
  readonly partitions?: number
  readonly redisUrl?: string
  readonly sessionTimeoutMs?: number
  readonly transactionTimeoutMs?: number
  readonly batchMaxRecords?: number
  /** Stop this process with SIGSTOP at this stage of the batch after `pauseAfterBatches` committed batches. */
  readonly pauseAtStage?: BatchStage
  readonly pauseAfterBatches?: number
  /** Kill this process with SIGKILL at this stage of the batch after `crashAfterBatches` committed batches. */
  readonly crashAtStage?: BatchStage
  readonly crashAfterBatches?: number
}

const config = JSON.parse(process.env.RUNNER_CONFIG ?? '{}') as RunnerConfig
const print = (event: object): void => {
  process.stdout.write(`${JSON.stringify(event, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`)
}

const topology =
  config.topology === 'aggregate'
    ? reviewAggregates(config.applicationId, config.input).compile({
        partitions: config.partitions ?? 3,
        sinkPartitions: Object.fromEntries(
          ['counts', 'stars', 'top'].map((o) => [`${config.applicationId}-${o}`, config.partitions ?? 3]),
        ),
      })
    : countingTopology(config)
const stores = new Map<string, StateStore>()
let closeBackend: () => Promise<void> = async () => {}
if (config.store === 'redis') {
  const { RedisStateBackend } = await import('../../src/state/redis-store.ts')
  const backend = new RedisStateBackend({
    applicationId: config.applicationId,
    target: { kind: 'single', url: config.redisUrl ?? 'redis://127.0.0.1:6379' },
  })
  for (const name of topology.storeNames) stores.set(name, backend.store(name))
  closeBackend = () => backend.close()
} else {
  for (const name of topology.storeNames) stores.set(name, new MemoryStateStore(name))
}

let paused = false
const runtime = new KafkaRuntime(topology, {
  brokers: config.brokers,
  stores,
  instanceId: config.instanceId,
  sessionTimeoutMs: config.sessionTimeoutMs ?? 3_000,
  heartbeatIntervalMs: Math.floor((config.sessionTimeoutMs ?? 3_000) / 4),
  rebalanceTimeoutMs: 10_000,
  transactionTimeoutMs: config.transactionTimeoutMs ?? 5_000,
  batchMaxRecords: config.batchMaxRecords ?? 200,
  fetchMaxWaitMs: 200,
  onEvent: (event) => print(event),
  onBatchStage: (stage) => {
    if (stage === 'committed')
      print({ event: 'committed', batches: runtime.stats.batches, records: runtime.stats.records })
    if (config.crashAtStage === stage && runtime.stats.batches >= (config.crashAfterBatches ?? 0)) {
      print({ event: 'crashing', stage })
      process.kill(process.pid, 'SIGKILL')
    }
    if (!paused && config.pauseAtStage === stage && runtime.stats.batches >= (config.pauseAfterBatches ?? 0)) {
      paused = true
      print({ event: 'pausing', stage })
      process.kill(process.pid, 'SIGSTOP')
      print({ event: 'resumed', stage })
    }
  },
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => runtime.stop())

try {
  await runtime.run()
  await closeBackend()
  process.exit(0)
} catch (error) {
  print({
    event: 'fatal',
    code: error instanceof RagstreamError ? error.code : undefined,
    message: (error as Error).message,
  })
  await closeBackend().catch(() => {})
  process.exit(error instanceof RagstreamError && error.code === 'RS_PRODUCER_FENCED' ? 3 : 1)
}
