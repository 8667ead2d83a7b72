// `ragstream status --format json` reports real lag: records produced with nothing consuming are all
// lag; once the group commits an offset, lag is the end minus that offset, per partition.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Writable } from 'node:stream'
import { Admin, Producer } from '@platformatic/kafka'
import { main } from '../../src/cli/main.ts'
import { checkKafka } from '../../src/config/services.ts'
import { generate } from '../../src/generator/generator.ts'
import type { TopologyStatus } from '../../src/ops/status.ts'
import { endpoints } from '../support/stack.ts'
import { opsEnv } from '../ops/support.ts'

async function cli(argv: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk, _e, done) {
        append(String(chunk))
        done()
      },
    })
  const code = await main(argv, {
    stdout: sink((s) => (stdout += s)) as unknown as typeof process.stdout,
    stderr: sink((s) => (stderr += s)) as unknown as typeof process.stderr,
    env,
  })
  return { code, stdout, stderr }
}

test(
  'status --format json: N records and nothing consuming → lag N; a committed offset lowers it exactly',
  { timeout: 30_000 },
  async (t) => {
    await checkKafka(endpoints)
    const o = opsEnv(t)
    const prefix = `${o.name}.src`
    await generate({
      brokers: endpoints.kafkaBrokers,
      seed: 1,
      server: prefix,
      withSchema: false,
      backfill: 0,
      rate: 0,
      createTopics: { partitions: 2 },
    })
    const tickets = `${prefix}.public.tickets`
    const producer = new Producer({ clientId: `status-${o.suffix}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
    t.after(() => producer.close())
    const N = 7
    await producer.send({
      messages: Array.from({ length: N }, (_, i) => ({
        topic: tickets,
        partition: i < 4 ? 0 : 1,
        key: Buffer.from(`{"id":${i}}`),
        value: Buffer.from('{}'),
      })),
    })

    const args = [
      'status',
      'support-copilot',
      '--prefix',
      prefix,
      '--name',
      o.name,
      '--sql-topology',
      o.sqlTopology,
      '--format',
      'json',
    ]
    const first = await cli(args, o.env)
    assert.equal(first.code, 0, first.stderr)
    const status = JSON.parse(first.stdout) as TopologyStatus
    assert.equal(status.activeVersion, null)
    const v1 = status.versions[0]
    assert.equal(v1.version, 'v1')
    assert.equal(v1.processor.group, o.name)
    const onTickets = v1.processor.partitions.filter((p) => p.topic === tickets)
    assert.deepEqual(
      onTickets.map((p) => [p.partition, p.end, p.committed, p.lag]),
      [
        [0, '4', null, 4],
        [1, '3', null, 3],
      ],
    )
    // Nothing consumes: every source partition's lag is its whole log (the generator wrote customers and products too).
    assert.equal(
      v1.processor.lag,
      v1.processor.partitions.reduce((sum, p) => sum + Number(p.end), 0),
    )
    assert.equal(
      onTickets.reduce((sum, p) => sum + p.lag, 0),
      N,
    )
    assert.ok(
      status.warnings.some((w) => /PostgreSQL/.test(w)),
      'the sink role of this config does not exist: reported, not fatal',
    )

    const admin = new Admin({ clientId: `status-admin-${o.suffix}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
    t.after(() => admin.close())
    await admin.alterConsumerGroupOffsets({
      groupId: o.name,
      topics: [{ name: tickets, partitionOffsets: [{ partition: 0, offset: 3n }] }],
    })
    const second = JSON.parse((await cli(args, o.env)).stdout) as TopologyStatus
    const after = second.versions[0].processor.partitions.filter((p) => p.topic === tickets)
    assert.deepEqual(
      after.map((p) => [p.partition, p.committed, p.lag]),
      [
        [0, '3', 1],
        [1, null, 3],
      ],
    )

    const text = await cli(args.slice(0, -2), o.env)
    assert.match(text.stdout, new RegExp(`processor lag ${v1.processor.lag - 3} +sink lag 0`))
    assert.match(text.stdout, /processor +\S+\.public\.tickets\[0\] +committed +3 +end +4 +lag +1/)
  },
)
