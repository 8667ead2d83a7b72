// Helpers for tests against the real schema registry: fresh subjects, soft-deleted afterwards.
import { SchemaType } from '@kafkajs/confluent-schema-registry'
import { createSchemaRegistry } from '../../src/serde/wire.ts'
import { endpoints } from '../support/stack.ts'

export const registryUrl = endpoints.schemaRegistryUrl

export function registry() {
  return createSchemaRegistry(registryUrl)
}

/**
 * Soft-deletes a subject. Never a hard delete: Apicurio 3.0 shares content between subjects, and a
 * permanent delete racing another test's registration of the same schema can drop the content that
 * registration just returned (its id then answers 404). The in-memory registry forgets everything
 * when the stack restarts anyway.
 */
export async function deleteSubject(subject: string): Promise<void> {
  await fetch(`${registryUrl.replace(/\/+$/, '')}/subjects/${encodeURIComponent(subject)}`, { method: 'DELETE' }).catch(
    () => {},
  )
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
