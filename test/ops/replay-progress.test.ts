// Replay progress over the whole job (issue 19): the bar and ETA count the processor's records and the
// sink's chunk records, so a replay whose processor is done but whose sink still has rows to write is
// neither at 100% nor at "ETA 0s".
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { PartitionLag } from '../../src/ops/consumer-lag.ts'
import { ReplayProgress, type LagReading } from '../../src/ops/replay-progress.ts'
import { progressLine } from '../../src/ops/replay.ts'

/** `[topic, partition, end, committed or null]` rows as the lag reader returns them. */
function lags(rows: readonly [string, number, number, number | null][]): PartitionLag[] {
  return rows.map(([topic, partition, end, committed]) => ({
    topic,
    partition,
    end: String(end),
    committed: committed === null ? null : String(committed),
    lag: end - (committed ?? 0),
  }))
}

const sources = (positions: readonly (number | null)[], end = 100): PartitionLag[] =>
  lags(positions.map((p, i) => ['tickets', i, end, p]))

const T0 = 1_000_000

test('replay progress: downstream totals are extrapolated while the processor runs, then exact; the slower part sets the ETA', () => {
  // At the start: 3 × 100 source records, no repartition topic yet, an empty chunk topic.
  const first: LagReading = {
    sources: sources([null, null, null]),
    repartitions: [],
    sink: lags([['chunks', 0, 0, null]]),
  }
  const progress = new ReplayProgress(first, T0)

  // 10 s in: half the sources read; 60 repartition records written, 40 read; 400 chunks written, 100 written to the table.
  const half = progress.update(
    {
      sources: sources([50, 50, 50]),
      repartitions: lags([['rep', 0, 60, 40]]),
      sink: lags([['chunks', 0, 400, 100]]),
    },
    T0 + 10_000,
  )
  assert.deepEqual(half.sources, { done: 150, total: 300, exact: true })
  // 60 repartition records for half the sources: 120 expected in all.
  assert.deepEqual(half.repartitions, { done: 40, total: 120, exact: false })
  assert.deepEqual(half.processor, { done: 190, total: 420, exact: false })
  // 400 chunks for 190 of 420 processor records: ~884 expected.
  assert.equal(half.sink.total, Math.round(400 / (190 / 420)))
  assert.equal(half.sink.exact, false)
  assert.equal(half.job.done, 290)
  assert.ok(Math.abs(half.fraction - 290 / (420 + 884)) < 1e-9)
  // Processor: 230 left at 19/s ≈ 12 s; sink: 784 left at 10/s ≈ 78 s — the sink decides.
  assert.ok(Math.abs(half.etaSeconds - 78.4) < 0.1, String(half.etaSeconds))
  assert.match(
    progressLine(half, 10, false),
    /\] +22% 290\/1304 records \(processor 190\/~420, sink 100\/~884 chunks\) .* ETA 1m19s$/,
  )
  assert.match(progressLine(half, 10, true), /ETA 1m19s \+ the index build$/)

  // The processor is done (a commit marker left at the end of its repartition topic); the sink is not.
  const processorDone = progress.update(
    {
      sources: sources([100, 100, 100]),
      repartitions: lags([['rep', 0, 121, 120]]),
      sink: lags([['chunks', 0, 900, 500]]),
    },
    T0 + 20_000,
  )
  assert.deepEqual(processorDone.sink, { done: 500, total: 900, exact: true })
  assert.ok(processorDone.fraction < 0.99 + 1e-9 && processorDone.fraction < 1)
  // 400 chunks left at 25/s.
  assert.ok(Math.abs(processorDone.etaSeconds - 16) < 0.01, String(processorDone.etaSeconds))
  assert.doesNotMatch(progressLine(processorDone, 20, false), /100%|ETA 0s/)

  // The sink read everything but the last commit marker: done.
  const done = progress.update(
    {
      sources: sources([100, 100, 100]),
      repartitions: lags([['rep', 0, 121, 120]]),
      sink: lags([['chunks', 0, 901, 900]]),
    },
    T0 + 36_000,
  )
  assert.equal(done.fraction, 1)
  assert.equal(done.etaSeconds, 0)
  assert.match(progressLine(done, 36, false), /\[#{30}\] 100% .* ETA 0s$/)
})

test('replay progress: records written to the sources after the start are live traffic, not replay; a resumed group counts from where it was', () => {
  // A group that had read 40 of partition 0 before (a resumed replay); partition 1 untouched.
  const first: LagReading = {
    sources: lags([
      ['tickets', 0, 100, 40],
      ['tickets', 1, 100, null],
    ]),
    repartitions: [],
    sink: lags([['chunks', 0, 10, 10]]),
  }
  const progress = new ReplayProgress(first, T0)
  const e = progress.update(
    {
      sources: lags([
        ['tickets', 0, 500, 150],
        ['tickets', 1, 500, 100],
      ]),
      repartitions: [],
      sink: lags([['chunks', 0, 10, 10]]),
    },
    T0 + 5_000,
  )
  assert.deepEqual(e.sources, { done: 160, total: 160, exact: true })
  // No chunks came out (e.g. all filtered): nothing left, done.
  assert.equal(e.fraction, 1)
})

test('replay progress: before the sink has moved its ETA is unknown, never 0', () => {
  const first: LagReading = { sources: sources([null]), repartitions: [], sink: lags([['chunks', 0, 0, null]]) }
  const progress = new ReplayProgress(first, T0)
  const e = progress.update(
    { sources: sources([30]), repartitions: [], sink: lags([['chunks', 0, 50, null]]) },
    T0 + 3_000,
  )
  assert.equal(e.etaSeconds, Infinity)
  assert.match(progressLine(e, 3, false), /ETA --$/)
  assert.ok(e.fraction < 1)
})
