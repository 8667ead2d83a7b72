// Smoke: an Avro schema registered and fetched through @kafkajs/confluent-schema-registry against the
// local registry, and a record round-tripped in the Confluent wire format (magic 0, 4-byte schema id).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry'
import { checkSchemaRegistry } from '../../src/config/services.ts'
import { endpoints, uniqueName } from '../support/stack.ts'

test('schema registry: register, fetch and round-trip an Avro record in the Confluent wire format', async () => {
  await checkSchemaRegistry(endpoints.schemaRegistryUrl)
  const registry = new SchemaRegistry({ host: endpoints.schemaRegistryUrl })
  const subject = `${uniqueName('smoke')}-value`
  const schema = {
    type: 'record',
    name: 'Ticket',
    namespace: 'dev.ragstream.smoke',
    fields: [
      { name: 'id', type: 'long' },
      { name: 'body', type: 'string' },
      { name: 'embedding', type: { type: 'array', items: 'float' } },
    ],
  }
  const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject })
  assert.ok(Number.isInteger(id) && id > 0, `registry returned schema id ${id}`)
  assert.equal(await registry.getLatestSchemaId(subject), id)

  // A fresh client (empty cache) must fetch the schema from the registry to decode.
  const reader = new SchemaRegistry({ host: endpoints.schemaRegistryUrl })
  const fetched = await reader.getSchema(id)
  assert.equal((fetched as { name?: string }).name, 'dev.ragstream.smoke.Ticket')

  const record = { id: 42, body: 'printer is on fire 🔥', embedding: [0.5, -0.25, 1] }
  const bytes = await registry.encode(id, record)
  assert.equal(bytes[0], 0, 'magic byte')
  assert.equal(bytes.readInt32BE(1), id, 'schema id in bytes 1..4')
  assert.deepEqual({ ...(await reader.decode(bytes)) }, record)
})
