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
  processor: { group: 'app', seen: true, members: 1, lag: 0, partitions: [] },
  sink: { group: 'sink', members: 1, lag: 0, partitions: [] },
  freshness: { rows: 18234, p50: 0.25, p99: 0.31, windowRows: 412, lastVisibleAt: '2026-11-26T10:57:46.052Z' },
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
