// A sink frozen (SIGSTOP) inside its batch transaction holds row locks on its partitions' offsets rows.
// The other sink must keep committing its own partitions within seconds (its claims skip locked rows
// instead of waiting), and must take the frozen one's partitions once Postgres ends the frozen session
// (idle_in_transaction_session_timeout, 10 s by default) — a bounded, documented time.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { SINK_LIMIT_DEFAULTS } from '../../src/sink/config.ts'
import { chunkEvent, chunkProducer, createSinkEnv, readChunks, spawnSink, waitFor, type SinkChild } from './support.ts'

const PARTITIONS = 4

function latestAssignment(sink: SinkChild): number[] {
  const assigned = sink.events.filter((e) => e.event === 'assigned')
  return (assigned.at(-1)?.partitions as number[] | undefined) ?? []
}

test('frozen sink: the other sink keeps committing its partitions within seconds; the frozen one’s partitions move after the idle-in-transaction timeout', async (t) => {
  const env = await createSinkEnv(t, { dims: 8, partitions: PARTITIONS, sessionTimeoutMs: 6000 })
  const { config } = env
  const producer = await chunkProducer(t, config)
  // A second transactional producer for the live partitions' steady stream (one transaction at a time each).
  const steady = await chunkProducer(t, config)
  const a = spawnSink(t, env, ['--linger-ms', '50'])
  await a.waitForEvent((e) => e.event === 'assigned' && (e.partitions as number[]).length === PARTITIONS)
  const b = spawnSink(t, env, ['--linger-ms', '50'])
  await waitFor('the partitions to split between the two sinks', async () => {
    const pa = latestAssignment(a)
    const pb = latestAssignment(b)
    return pa.length > 0 && pb.length > 0 && pa.length + pb.length === PARTITIONS
  })
  const frozenParts = latestAssignment(a)
  const liveParts = latestAssignment(b)
  t.diagnostic(`frozen-to-be owns ${frozenParts}, the other ${liveParts}`)

  // B's partitions get a record every 100 ms for the whole test; each commit of B is timed.
  let seq = 0
  let producing = true
  const production = (async () => {
    while (producing) {
      const batch = []
      for (const partition of liveParts) {
        const id = `live${seq++}#0`
        batch.push({ key: id, partition, value: await steady.encodeChunk(chunkEvent(config, { id })) })
      }
      await steady.send(batch)
      await sleep(100)
    }
  })()
  t.after(async () => {
    producing = false
    await production.catch(() => {})
  })
  const liveCommits: number[] = []
  b.onEvent((e) => {
    const offsets = Object.keys((e.offsets as Record<string, string> | undefined) ?? {}).map(Number)
    if (e.event === 'batch-committed' && offsets.some((p) => liveParts.includes(p))) liveCommits.push(Date.now())
  })

  // Freeze A inside a batch transaction: big batches to its partitions, SIGSTOP as one begins, and
  // check that A really holds its offsets rows locked (else let it go and try the next batch). Each
  // carries a DELETION_APPLIED audit event: such a batch is an explicit transaction of several
  // statements (its subjects' rows are looked up first), which a frozen client can leave open; a batch
  // of chunks alone is one statement, which the server runs to its COMMIT whatever the client does.
  const heldLocked = async (): Promise<boolean> => {
    await env.admin.query('BEGIN')
    try {
      const free = await env.admin.query(
        `SELECT partition FROM ${config.names.offsetsTable} WHERE topic = $1 AND partition = ANY($2::int[]) FOR UPDATE SKIP LOCKED`,
        [config.topic, frozenParts],
      )
      // All of them: a batch can hold fewer (a fetch that came before another partition's commit
      // marker), and then the records of the partitions it left free move before the timeout.
      return (free.rowCount ?? 0) === 0
    } finally {
      await env.admin.query('ROLLBACK')
    }
  }
  let frozenAt = 0
  for (let attempt = 0; attempt < 20 && frozenAt === 0; attempt++) {
    const begins = a.events.filter((e) => e.event === 'batch-begin').length
    const big = []
    for (let i = 0; i < 1500; i++) {
      const id = `frozen${attempt}-${i}#0`
      big.push({
        key: id,
        partition: frozenParts[i % frozenParts.length],
        value: await producer.encodeChunk(chunkEvent(config, { id })),
      })
    }
    for (const partition of frozenParts)
      big.push({
        key: `audit-${attempt}-${partition}`,
        partition,
        value: await producer.encodeAudit({
          event_id: `audit-${attempt}-${partition}`,
          kind: 'DELETION_APPLIED',
          topology: config.topology,
          topology_version: config.version,
          request_id: `req-${attempt}`,
          subject_hash: 'nobody',
          entity_key_hash: null,
          reason: 'gdpr',
          counts: { chunks_removed: 0 },
          at_ms: Date.now(),
        }),
      })
    const begun = a.waitForEvent((e) => e.event === 'batch-begin' && a.events.indexOf(e) >= begins, 30_000)
    await producer.send(big)
    await begun
    a.child.kill('SIGSTOP')
    await sleep(300)
    if (await heldLocked()) frozenAt = Date.now()
    else a.child.kill('SIGCONT')
  }
  assert.ok(frozenAt > 0, 'froze the sink inside its transaction')
  t.after(() => {
    a.child.kill('SIGCONT')
  })
  t.diagnostic('sink A frozen inside its batch transaction')

  // Records for A's partitions produced while it is frozen: B must index them after the timeout.
  const moved = []
  for (let i = 0; i < 10; i++) {
    const id = `moved${i}#0`
    moved.push({
      key: id,
      partition: frozenParts[i % frozenParts.length],
      value: await producer.encodeChunk(chunkEvent(config, { id })),
    })
  }
  await producer.send(moved)
  const pending = await b.waitForEvent(
    (e) => e.event === 'claim-pending' && (e.partitions as number[]).some((p) => frozenParts.includes(p)),
    30_000,
  )
  const pendingAt = Date.now()
  t.diagnostic(`B found A's partitions locked ${pendingAt - frozenAt} ms after the freeze: ${JSON.stringify(pending)}`)
  // While A's partitions are still pending, B commits its own.
  await waitFor(
    'B to commit its partitions while A is frozen',
    async () => liveCommits.some((at) => at > pendingAt),
    10_000,
    50,
  )
  const firstLiveCommit = liveCommits.find((at) => at > pendingAt)! - pendingAt
  await waitFor(
    'B to index the frozen sink’s records',
    async () => (await readChunks(env.admin, config)).has('moved9#0'),
    60_000,
    200,
  )
  const movedAfter = Date.now() - frozenAt
  const gaps = liveCommits
    .filter((at) => at > frozenAt)
    .map((at, i, all) => (i === 0 ? at - frozenAt : at - all[i - 1]))
  const maxGap = Math.max(...gaps)
  t.diagnostic(
    `B committed its own partitions ${firstLiveCommit} ms after the claim found A's locked; longest gap between B's commits since the freeze ${maxGap} ms (includes the group rebalance); A's partitions moved ${movedAfter} ms after the freeze`,
  )
  // The group needs up to one session timeout to notice A; after that B never waits for A's locks.
  assert.ok(maxGap < config.sessionTimeoutMs + 6000, `B kept committing (longest gap ${maxGap} ms)`)
  const bound = SINK_LIMIT_DEFAULTS.idleInTransactionTimeoutMs + config.sessionTimeoutMs + 15_000
  assert.ok(movedAfter < bound, `A's partitions moved within ${bound} ms (took ${movedAfter})`)
  assert.ok(
    movedAfter > SINK_LIMIT_DEFAULTS.idleInTransactionTimeoutMs - 1000,
    'not before Postgres ended the frozen session',
  )
  producing = false
  await production
  // Nothing lost: every record of the live partitions is indexed once the sink catches up.
  const missing = async (): Promise<string[]> => {
    const rows = await readChunks(env.admin, config)
    return Array.from({ length: seq }, (_, i) => `live${i}#0`).filter((id) => !rows.has(id))
  }
  await waitFor('every live record to be indexed', async () => (await missing()).length === 0, 30_000, 200).catch(
    async () => assert.deepEqual(await missing(), []),
  )
})
