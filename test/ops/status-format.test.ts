// `status` prints live freshness by default: the percentiles cover a recent window (named on the line),
// so a caught-up pipeline does not report its backfill's age; `--freshness-window all` covers every row.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { formatStatus, type TopologyStatus, type VersionStatus } from '../../src/ops/status.ts'

const version: VersionStatus = {
  version: 'v1',
  active: true,
  applicationId: 'app',
  chunkTopic: 'chunks',
  table: 'rag.t_v1',
  processor: {
    group: 'app',
    seen: true,
    members: 2,
    groupState: 'Stable',
    assignment: [
      {
        memberId: 'app-a-1f2e',
        instanceId: 'proc-1',
        clientId: 'app-proc-1',
        host: '/10.0.0.5',
        assignments: [{ topic: 'src', partitions: [0, 2] }],
        tasks: [0, 2],
      },
      {
        memberId: 'app-b-9c1d',
        instanceId: 'proc-2',
        clientId: 'app-proc-2',
        host: '/10.0.0.6',
        assignments: [{ topic: 'src', partitions: [1, 3] }],
        tasks: [1, 3],
      },
    ],
    lag: 12,
    lagSeconds: { records: 12, oldestSeconds: 3.25, drainSeconds: null },
    partitions: [],
  },
  sink: {
    group: 'sink',
    members: 1,
    groupState: 'Stable',
    assignment: [
      {
        memberId: 'sink-5d',
        instanceId: null,
        clientId: 'ragstream-sink',
        host: '/10.0.0.7',
        assignments: [{ topic: 'chunks', partitions: [0, 1, 2, 3] }],
        tasks: [0, 1, 2, 3],
      },
    ],
    lag: 0,
    lagSeconds: { records: 0, oldestSeconds: 0, drainSeconds: 0 },
    partitions: [],
  },
  freshness: {
    rows: 18234,
    p50: 0.25,
    p99: 0.31,
    windowRows: 412,
    lastVisibleAt: '2026-11-26T10:57:46.052Z',
    splitRows: 400,
    capture: { p50: 0.0124, p99: 0.0511 },
    ragstream: { p50: 0.0432, p99: 0.0987 },
  },
  stores: [],
}
const status = (freshnessWindowSeconds: number | null): TopologyStatus => ({
  topology: 't',
  sqlTopology: 't',
  view: 'rag.t',
  activeVersion: 'v1',
  versions: [version],
  freshnessWindowSeconds,
  warnings: [],
})

test('status: the freshness line names its window and how many rows it covers', () => {
  assert.match(
    formatStatus(status(300)),
    /^ {2}freshness \(last 300s: 412 rows\) {2}p50 0\.25s {2}p99 0\.31s {2}rows 18234 {2}last visible 2026-11-26T10:57:46\.052Z$/m,
  )
  assert.match(formatStatus(status(null)), /^ {2}freshness \(all rows\) {2}p50 0\.25s/m)
})

test('status: the freshness split line: capture (source commit → source topic) and ragstream (source topic → visible), over the rows that carry the append time', () => {
  assert.match(
    formatStatus(status(300)),
    /^ {2}freshness split \(400 rows\) {2}capture p50 12ms {2}p99 51ms {2}ragstream p50 43ms {2}p99 99ms$/m,
  )
  // Rows of an older processor carry no append time: no split line, the end-to-end line stays.
  const old = { ...version, freshness: { ...version.freshness!, splitRows: 0, capture: null, ragstream: null } }
  const text = formatStatus({ ...status(300), versions: [old] })
  assert.doesNotMatch(text, /freshness split/)
  assert.match(text, /^ {2}freshness \(last 300s/m)
})

test('status: the lag in seconds of both groups, and every member with the tasks it owns', () => {
  const text = formatStatus(status(300))
  assert.match(text, /^ {2}lag in seconds: processor oldest unprocessed 3\.3s {3}sink oldest unprocessed 0\.0s$/m)
  assert.match(text, /^ {2}processor group app \(Stable\):$/m)
  assert.match(text, /^ {4}member proc-1 +app-proc-1@\/10\.0\.0\.5 +tasks 0,2$/m)
  assert.match(text, /^ {4}member proc-2 +app-proc-2@\/10\.0\.0\.6 +tasks 1,3$/m)
  assert.match(
    text,
    /^ {2}sink group sink \(Stable\):\n {4}member sink-5d +ragstream-sink@\/10\.0\.0\.7 +partitions 0,1,2,3$/m,
  )
})
