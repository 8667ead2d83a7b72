// Lag in seconds on the real broker: the age of the oldest unprocessed record comes from the record at
// the group's committed offset; the time to drain from the rate the group committed between two
// readings; both reach Prometheus through lagExporter as the autoscaling gauges.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { checkKafka } from '../../src/config/services.ts'
import { Metrics } from '../../src/observability/metrics.ts'
import { consumerLag } from '../../src/ops/consumer-lag.ts'
import { lagExporter } from '../../src/ops/instrument.ts'
import { LagClock } from '../../src/ops/lag-seconds.ts'
import { createTopics, endpoints, uniqueName } from '../support/stack.ts'

test('lag in seconds: oldest unprocessed record, drain time at the committed rate, exported as gauges', async (t) => {
  await checkKafka(endpoints)
  const topic = uniqueName('lag-seconds')
  const group = uniqueName('lag-seconds-group')
  await createTopics(t, [topic], 2)
  const admin = new Admin({ clientId: uniqueName('lag-seconds'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  const producer = new Producer({ clientId: uniqueName('lag-seconds'), bootstrapBrokers: [...endpoints.kafkaBrokers] })
  const clock = new LagClock(endpoints.kafkaBrokers, uniqueName('lag-seconds-clock'))
  t.after(async () => {
    await admin.deleteGroups({ groups: [group] }).catch(() => {})
    await Promise.allSettled([admin.close(), producer.close(), clock.close()])
  })
  // Partition 0: 10 records, the k-th 600 − k seconds old; partition 1: 10 records 300 − k seconds old.
  const now = Date.now()
  await producer.send({
    messages: Array.from({ length: 20 }, (_, i) => ({
      topic,
      partition: i < 10 ? 0 : 1,
      key: Buffer.from(`k${i}`),
      value: Buffer.from('v'),
      timestamp: BigInt(now - ((i < 10 ? 600 : 300) - (i % 10)) * 1000),
    })),
  })
  const commit = (p0: bigint, p1: bigint) =>
    admin.alterConsumerGroupOffsets({
      groupId: group,
      topics: [
        {
          name: topic,
          partitionOffsets: [
            { partition: 0, offset: p0 },
            { partition: 1, offset: p1 },
          ],
        },
      ],
    })

  // Never committed: counts from the log start, so the oldest is partition 0's first record.
  const first = await clock.read(group, await consumerLag(admin, group, [topic]), now)
  assert.equal(first.records, 20)
  assert.equal(first.oldestSeconds, 600)
  assert.equal(first.drainSeconds, null, 'no rate from one reading')

  // 5 + 2 records processed in 7 s (as the clock is told): 13 left at 1 record/s.
  await commit(5n, 2n)
  const second = await clock.read(group, await consumerLag(admin, group, [topic]), now + 7_000)
  assert.equal(second.records, 13)
  assert.equal(second.oldestSeconds, 600 - 5 + 7, 'record 5 of partition 0, 7 s later')
  assert.equal(second.drainSeconds, 13)

  // Partition 0 done: the oldest is partition 1's record at offset 2.
  await commit(10n, 2n)
  const third = await clock.read(group, await consumerLag(admin, group, [topic]), now + 12_000)
  assert.equal(third.oldestSeconds, 300 - 2 + 12)
  assert.equal(third.drainSeconds, 8 / 1, '5 records in 5 s, 8 left')

  // Caught up: 0 s, whatever the rate.
  await commit(10n, 10n)
  const caughtUp = await clock.read(group, await consumerLag(admin, group, [topic]), now + 12_000)
  assert.deepEqual(caughtUp, { records: 0, oldestSeconds: 0, drainSeconds: 0 })

  // The exporter: both gauges per group, for an autoscaler to scrape.
  await commit(3n, 10n)
  const metrics = new Metrics()
  const exporterClock = new LagClock(endpoints.kafkaBrokers, uniqueName('lag-seconds-export'))
  t.after(() => exporterClock.close())
  const exportLag = lagExporter(admin, metrics, 'processor', group, () => [topic], exporterClock)
  await exportLag()
  const gauge = (family: string, text: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(`${family}{component="processor",group="${group}"}`))
    return line === undefined ? undefined : Number(line.split(' ').at(-1))
  }
  const text = await metrics.text()
  const age = gauge('ragstream_consumer_lag_seconds', text)
  assert.ok(age !== undefined && age >= 597 && age < 700, `record 3 of partition 0 is ~597 s old: ${age}`)
  assert.equal(gauge('ragstream_consumer_drain_seconds', text), undefined, 'no drain time without a rate')
  await commit(6n, 10n)
  await exportLag()
  const drain = gauge('ragstream_consumer_drain_seconds', await metrics.text())
  assert.ok(drain !== undefined && drain > 0, `a drain time once the group moved: ${drain}`)
})
