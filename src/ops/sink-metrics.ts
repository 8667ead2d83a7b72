/**
 * `ragstream sink --metrics-port`: the sink's metrics endpoint — batch size, commit time and rows
 * from its log events, end-to-end freshness read back from Postgres, and the consumer lag of its
 * group on the chunk topic — in one call, so the sink command only wires it in.
 */
import { Admin } from '@platformatic/kafka'
import { Metrics, serveMetrics } from '../observability/metrics.ts'
import type { SinkConfig } from '../sink/config.ts'
import type { SinkLogEvent } from '../sink/pgvector-sink.ts'
import { every, freshnessExporter, instrumentSink, lagExporter } from './instrument.ts'
import { connectPostgres } from './pipeline.ts'
import { LagClock } from './lag-seconds.ts'

export interface SinkMetricsServer {
  /** Writer `writer`'s log callback (writer 0 for a single sink): feeds the metrics labelled with it, then `log`. */
  logFor(writer: number): (event: SinkLogEvent) => void
  readonly port: number
  close(): Promise<void>
}

export async function startSinkMetrics(o: {
  port: number
  config: SinkConfig
  postgresUrl: string
  kafkaBrokers: readonly string[]
  log: (event: SinkLogEvent) => void
}): Promise<SinkMetricsServer> {
  const metrics = new Metrics({ defaultMetrics: true })
  const server = await serveMetrics(metrics, { port: o.port })
  const admin = new Admin({
    clientId: `ragstream-sink-metrics-${o.config.topology}`,
    bootstrapBrokers: [...o.kafkaBrokers],
  })
  const reader = await connectPostgres(o.postgresUrl, 'ragstream-sink-metrics')
  const clock = new LagClock(o.kafkaBrokers, `ragstream-sink-metrics-${o.config.topology}-lag-seconds`)
  const stop = every(2000, [
    freshnessExporter(reader, o.config.names.chunkTable, o.config.names.chunkTableName, metrics),
    lagExporter(admin, metrics, 'sink', o.config.groupId, () => [o.config.topic], clock),
  ])
  const address = server.address()
  return {
    logFor: (writer) => instrumentSink(metrics, o.config.names.chunkTableName, o.log, writer).log,
    port: typeof address === 'object' && address ? address.port : o.port,
    async close() {
      await stop()
      await Promise.allSettled([
        admin.close(),
        clock.close(),
        reader.end(),
        new Promise<void>((resolve) => server.close(() => resolve())),
      ])
    },
  }
}
