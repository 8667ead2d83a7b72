// The audit event schema evolves in the real schema registry: a subject holding the schema as it was
// before TRUNCATED / SNAPSHOT_RESET (six kinds, no enum default) accepts the current one (BACKWARD),
// and a TRUNCATED event encoded by the processor's output decodes with the writer schema, as the
// pgvector sink reads it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import { AUDIT_EVENT_SCHEMA, auditEventOutput } from '../../../src/governance/forget/governance-codecs.ts'
import { resetAudit } from '../../../src/operators/table-reset.ts'
import { deleteSubject, registry } from '../../serde/registry-helpers.ts'
import { endpoints, uniqueName } from '../../support/stack.ts'

/** The schema before the reset kinds: the current one without the symbols and the default added with them. */
function previousSchema(): Record<string, unknown> {
  const schema = structuredClone(AUDIT_EVENT_SCHEMA) as { fields: { name: string; type: Record<string, unknown> }[] }
  const kind = schema.fields.find((f) => f.name === 'kind')!.type
  kind.symbols = (kind.symbols as string[]).filter((s) => !['TRUNCATED', 'SNAPSHOT_RESET', 'UNKNOWN'].includes(s))
  delete kind.default
  delete kind.doc
  return schema
}

test('the registry accepts the audit schema with the reset kinds over the previous one; TRUNCATED decodes', async (t) => {
  const chunkTopic = uniqueName('audit-evolution')
  const subject = `${chunkTopic}-audit-value`
  t.after(() => deleteSubject(subject))
  const previous = await registry().register(
    { type: SchemaType.AVRO, schema: JSON.stringify(previousSchema()) },
    { subject },
  )
  const output = auditEventOutput({ registryUrl: endpoints.schemaRegistryUrl, chunkTopic })
  await output.open()
  const event = resetAudit({
    topology: 'app',
    topologyVersion: null,
    table: 'tickets',
    sourceTable: 'public.tickets',
    point: { kind: 'truncate', position: '24023128', timestampMs: 1_700_000_000_000 },
    partition: 2,
    rowsRemoved: 17,
    atMs: 1_700_000_000_000,
  })
  const bytes = output.encode(event)
  assert.notEqual(bytes.readUInt32BE(1), previous.id, 'registered as a new version')
  const decoded = (await new SchemaRegistry({ host: endpoints.schemaRegistryUrl }).decode(bytes)) as Record<
    string,
    unknown
  >
  assert.equal(decoded.kind, 'TRUNCATED')
  assert.equal(decoded.reason, 'tickets (public.tickets)')
  assert.deepEqual(
    Object.fromEntries(Object.entries(decoded.counts as Record<string, unknown>).map(([k, v]) => [k, Number(v)])),
    { rows_removed: 17, partition: 2, source_position: 24023128 },
  )
})
