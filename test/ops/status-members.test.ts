// `ragstream status` names every member of the processor's group with the tasks it owns (static
// members by their instance id), and reports the lag in seconds: the age of the oldest record the
// group has not processed, read from the record at the committed offset, not guessed from counts.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Writable } from 'node:stream'
import { Admin, Consumer, Producer } from '@platformatic/kafka'
import { main } from '../../src/cli/main.ts'
import { checkKafka } from '../../src/config/services.ts'
import { generate } from '../../src/generator/generator.ts'
import type { TopologyStatus } from '../../src/ops/status.ts'
import { endpoints } from '../support/stack.ts'
import { opsEnv } from './support.ts'

async function status(argv: string[], env: NodeJS.ProcessEnv): Promise<{ json: TopologyStatus; text: string }> {
  const run = async (args: string[]): Promise<string> => {
    let stdout = ''
    let stderr = ''
    const collect = (append: (s: string) => void) =>
      new Writable({
        write(chunk, _e, done) {
          append(String(chunk))
          done()
        },
      })
    const code = await main(args, {
      stdout: collect((s) => (stdout += s)) as unknown as typeof process.stdout,
      stderr: collect((s) => (stderr += s)) as unknown as typeof process.stderr,
      env,
    })
    assert.equal(code, 0, stderr)
    return stdout
  }
  const json = JSON.parse(await run([...argv, '--format', 'json'])) as TopologyStatus
  return { json, text: await run(argv) }
}

test(
  'status: members of the processor group with their tasks; lag in seconds is the age of the oldest unprocessed record',
  { timeout: 90_000 },
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
    // Ticket i happened 1000 − 100·i seconds ago: 0 and 1 on partition 0 (offsets 0, 1), 2 and 3 on partition 1.
    const now = Date.now()
    await producer.send({
      messages: Array.from({ length: 4 }, (_, i) => ({
        topic: tickets,
        partition: i < 2 ? 0 : 1,
        key: Buffer.from(`{"id":${i}}`),
        value: Buffer.from('{}'),
        timestamp: BigInt(now - (1000 - 100 * i) * 1000),
      })),
    })
    const args = ['status', 'support-copilot', '--prefix', prefix, '--name', o.name, '--sql-topology', o.sqlTopology]

    const first = await status(args, o.env)
    const age = first.json.versions[0].processor.lagSeconds
    assert.ok(age, JSON.stringify(first.json.warnings))
    assert.ok(
      age.oldestSeconds >= 1000 && age.oldestSeconds < 1100,
      `nothing processed: ticket 0 (1000 s old) is the oldest, got ${age.oldestSeconds}`,
    )
    assert.equal(age.drainSeconds, null, 'one reading has no rate')

    // The group processed partition 0: the oldest unprocessed ticket is now ticket 2 (800 s old).
    const admin = new Admin({ clientId: `status-admin-${o.suffix}`, bootstrapBrokers: [...endpoints.kafkaBrokers] })
    t.after(() => admin.close())
    await admin.alterConsumerGroupOffsets({
      groupId: o.name,
      topics: [{ name: tickets, partitionOffsets: [{ partition: 0, offset: 2n }] }],
    })
    const second = await status(args, o.env)
    const after = second.json.versions[0].processor.lagSeconds!
    assert.ok(
      after.oldestSeconds >= 800 && after.oldestSeconds < 900,
      `ticket 2 is the oldest, got ${after.oldestSeconds}`,
    )
    assert.match(second.text, /^ {2}lag in seconds: processor oldest unprocessed 1[34]m\d\ds {3}sink /m)

    // Two static members in the processor's group: status lists each with its tasks.
    const members = ['proc-1', 'proc-2'].map(
      (instanceId) =>
        new Consumer({
          groupId: o.name,
          groupInstanceId: instanceId,
          clientId: `${o.name}-${instanceId}`,
          bootstrapBrokers: [...endpoints.kafkaBrokers],
          autocommit: false,
          sessionTimeout: 10_000,
          heartbeatInterval: 1_000,
        }),
    )
    t.after(async () => {
      await Promise.all(members.map((m) => new Promise<void>((resolve) => m.leaveGroup(true, () => resolve()))))
      await Promise.allSettled(members.map((m) => m.close(true)))
    })
    for (const m of members) m.topics.track(tickets)
    await Promise.all(members.map((m) => m.joinGroup({})))
    // Joining and the leader's assignment take a moment: read status until both members hold a task.
    let listed: TopologyStatus | undefined
    let text: string
    const deadline = Date.now() + 60_000
    for (;;) {
      ;({ json: listed, text } = await status(args, o.env))
      const assignment = listed.versions[0].processor.assignment
      if (assignment.length === 2 && assignment.every((m) => m.tasks.length === 1)) break
      assert.ok(Date.now() < deadline, `both members with one task each; last: ${JSON.stringify(assignment)}`)
    }
    const assignment = listed!.versions[0].processor.assignment
    assert.deepEqual(
      assignment.map((m) => m.instanceId),
      ['proc-1', 'proc-2'],
    )
    assert.deepEqual(assignment.flatMap((m) => m.tasks).sort(), [0, 1], 'every task has one owner')
    for (const m of assignment) {
      assert.deepEqual(m.assignments, [{ topic: tickets, partitions: m.tasks }])
      assert.match(text, new RegExp(`^ {4}member ${m.instanceId} +${m.clientId}@\\S+ +tasks ${m.tasks[0]}$`, 'm'))
    }
    assert.equal(listed!.versions[0].processor.members, 2)
  },
)
