import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  CONNECTOR_FILES,
  connectorConfigWarnings,
  connectorDefinition,
  postgresConnectorVars,
} from '../../src/cdc/connect.ts'

test('a connector that skips truncates (Debezium default or explicit t) is warned about; none is not', () => {
  assert.match(connectorConfigWarnings({})[0] ?? '', /unset: Debezium skips t.*TRUNCATE emits nothing/)
  assert.match(connectorConfigWarnings({ 'skipped.operations': 'u, t' })[0] ?? '', /skipped\.operations=u, t/)
  assert.deepEqual(connectorConfigWarnings({ 'skipped.operations': 'none' }), [])
  assert.deepEqual(connectorConfigWarnings({ 'skipped.operations': 'u' }), [])
})

test('table topics of more than one partition are warned about (re-snapshots converge only partly)', () => {
  const none = { 'skipped.operations': 'none' }
  assert.match(
    connectorConfigWarnings({ ...none, 'topic.creation.default.partitions': '6' })[0] ?? '',
    /partitions=6: a re-snapshot removes rows deleted while no connector ran only on partitions/,
  )
  assert.deepEqual(connectorConfigWarnings({ ...none, 'topic.creation.default.partitions': '1' }), [])
})

test('the checked-in connectors raise no warning', () => {
  const vars = postgresConnectorVars({
    name: 'n',
    sourceUrl: 'postgres://postgres@127.0.0.1:5433/db',
    topicPrefix: 'p',
    tables: ['public.t'],
    slot: 's',
    publication: 'p',
    registryUrl: 'http://127.0.0.1:8081/apis/ccompat/v7',
  })
  for (const file of Object.values(CONNECTOR_FILES)) {
    assert.deepEqual(connectorConfigWarnings(connectorDefinition(file, vars).config), [], String(file))
  }
})
