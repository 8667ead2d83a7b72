// Helpers for tests against the real schema registry: fresh subjects, deleted (soft, then hard) afterwards.
import { SchemaType } from '@kafkajs/confluent-schema-registry'
import { createSchemaRegistry } from '../../src/serde/wire.ts'
import { endpoints } from '../support/stack.ts'

export const registryUrl = endpoints.schemaRegistryUrl

export function registry() {
  return createSchemaRegistry(registryUrl)
}

export async function deleteSubject(subject: string): Promise<void> {
  const base = `${registryUrl.replace(/\/+$/, '')}/subjects/${encodeURIComponent(subject)}`
  await fetch(base, { method: 'DELETE' }).catch(() => {})
  await fetch(`${base}?permanent=true`, { method: 'DELETE' }).catch(() => {})
}

/** Registers an Avro schema under a subject and deletes the subject when the test ends. */
export async function registerAvro(
  t: { after: (fn: () => Promise<void>) => void },
  subject: string,
  schema: object,
): Promise<number> {
  t.after(() => deleteSubject(subject))
  const { id } = await registry().register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject })
  return id
}
