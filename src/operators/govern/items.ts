/**
 * What the govern stage buffers and emits besides rows: its synchronous pass wraps each input in one
 * of these so one batch can hold row changes and deletion requests in input order, and the emitter
 * can tell an audit event (to the audit topic) from a governed row (downstream).
 */
import type { AuditEventValue } from '../../governance/audit.ts'

/** A row change as buffered for the stage, with its record's timestamp. */
export class EntityChange {
  readonly value: unknown
  readonly timestamp: number
  constructor(value: unknown, timestamp: number) {
    this.value = value
    this.timestamp = timestamp
  }
}

/** One task's copy of a deletion request, still encoded (decoded per batch: Avro needs its schemas loaded). */
export class ForgetCopy {
  readonly bytes: Buffer | null
  constructor(bytes: Buffer | null) {
    this.bytes = bytes
  }
}

/** An audit event among the stage's results: written to the audit topic, never downstream. */
export class AuditRecord {
  readonly event: AuditEventValue
  constructor(event: AuditEventValue) {
    this.event = event
  }
}

/** A record govern writes to an internal topic as is (a forgotten entity's unsubscribe from a join). */
export class InternalRecord {
  readonly topic: string
  readonly partition: number
  readonly key: Buffer
  readonly value: Buffer
  constructor(topic: string, partition: number, key: Buffer, value: Buffer) {
    this.topic = topic
    this.partition = partition
    this.key = key
    this.value = value
  }
}
