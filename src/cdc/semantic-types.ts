/**
 * Debezium / Kafka Connect semantic types → readable values, when the record carries its schema
 * (JSON with the schema wrapper, or Avro, whose writer schema keeps `connect.name`). Without a
 * schema (schemaless JSON) values stay as sent. Opt-in (`semanticTypes: 'convert'`), because the
 * connector can do the same (decimal.handling.mode=string, time.precision.mode) and some pipelines
 * want the raw numbers.
 *
 *   org.apache.kafka.connect.data.Decimal     bytes (base64 in JSON), unscaled two's complement → "1234.50"
 *   io.debezium.data.VariableScaleDecimal     {scale, value}                                    → "1234.5"
 *   io.debezium.time.Date, connect Date       days since epoch                                  → "2026-11-26"
 *   io.debezium.time.Timestamp, connect Timestamp   ms since epoch (no zone)                     → "2026-11-26T10:00:00.000"
 *   io.debezium.time.MicroTimestamp           µs since epoch (no zone)                          → "2026-11-26T10:00:00.000000"
 *   io.debezium.time.NanoTimestamp            ns since epoch (no zone)                          → "2026-11-26T10:00:00.000000000"
 *   io.debezium.time.Time / MicroTime / NanoTime   ms / µs / ns past midnight                  → "10:00:00.000[000[000]]"
 * Anything else (ZonedTimestamp is already a string) is left alone.
 */
import type { Row } from './change-event.ts'

type Convert = (value: unknown) => unknown

function bytesOf(value: unknown): Buffer | undefined {
  if (typeof value === 'string') return Buffer.from(value, 'base64')
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  return undefined
}

/** Big-endian two's-complement unscaled integer with `scale` → plain decimal string. */
export function decimalString(bytes: Buffer, scale: number): string {
  let unscaled = 0n
  for (const byte of bytes) unscaled = (unscaled << 8n) | BigInt(byte)
  if (bytes.length > 0 && (bytes[0] & 0x80) !== 0) unscaled -= 1n << BigInt(bytes.length * 8)
  const negative = unscaled < 0n
  let digits = (negative ? -unscaled : unscaled).toString()
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0')
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`
  } else if (scale < 0) digits += '0'.repeat(-scale)
  return negative ? `-${digits}` : digits
}

const pad = (n: bigint | number, width: number) => n.toString().padStart(width, '0')

/** An epoch offset in `unitsPerMs`-ths of a millisecond → ISO local date-time with `fraction` digits. */
function isoFromEpoch(value: unknown, perSecond: bigint, fraction: number): unknown {
  if (typeof value !== 'number' && typeof value !== 'bigint') return value
  const total = BigInt(value)
  let seconds = total / perSecond
  let rest = total % perSecond
  if (rest < 0n) {
    rest += perSecond
    seconds -= 1n
  }
  const date = new Date(Number(seconds) * 1000).toISOString().slice(0, 19)
  return `${date}.${pad(rest, fraction)}`
}

function timeOfDay(value: unknown, perSecond: bigint, fraction: number): unknown {
  if (typeof value !== 'number' && typeof value !== 'bigint') return value
  const total = BigInt(value)
  const seconds = total / perSecond
  return `${pad(seconds / 3600n, 2)}:${pad((seconds / 60n) % 60n, 2)}:${pad(seconds % 60n, 2)}.${pad(total % perSecond, fraction)}`
}

function converterFor(name: string | undefined, parameters: Record<string, unknown> | undefined): Convert | undefined {
  switch (name) {
    case 'org.apache.kafka.connect.data.Decimal': {
      const scale = Number(parameters?.scale ?? 0)
      return (v) => {
        const bytes = bytesOf(v)
        return bytes ? decimalString(bytes, scale) : v
      }
    }
    case 'io.debezium.data.VariableScaleDecimal':
      return (v) => {
        const s = v as { scale?: unknown; value?: unknown } | null
        const bytes = bytesOf(s?.value)
        return bytes && typeof s?.scale === 'number' ? decimalString(bytes, s.scale) : v
      }
    case 'io.debezium.time.Date':
    case 'org.apache.kafka.connect.data.Date':
      return (v) => (typeof v === 'number' ? new Date(v * 86_400_000).toISOString().slice(0, 10) : v)
    case 'io.debezium.time.Timestamp':
    case 'org.apache.kafka.connect.data.Timestamp':
      return (v) => isoFromEpoch(v, 1000n, 3)
    case 'io.debezium.time.MicroTimestamp':
      return (v) => isoFromEpoch(v, 1_000_000n, 6)
    case 'io.debezium.time.NanoTimestamp':
      return (v) => isoFromEpoch(v, 1_000_000_000n, 9)
    case 'io.debezium.time.Time':
    case 'org.apache.kafka.connect.data.Time':
      return (v) => timeOfDay(v, 1000n, 3)
    case 'io.debezium.time.MicroTime':
      return (v) => timeOfDay(v, 1_000_000n, 6)
    case 'io.debezium.time.NanoTime':
      return (v) => timeOfDay(v, 1_000_000_000n, 9)
    default:
      return undefined
  }
}

export type RowConverter = (row: Row) => Row

function rowConverter(converters: Map<string, Convert>): RowConverter | undefined {
  if (converters.size === 0) return undefined
  const entries = [...converters]
  return (row) => {
    const out: Record<string, unknown> = { ...row }
    for (const [field, convert] of entries) {
      const v = out[field]
      if (v !== null && v !== undefined) out[field] = convert(v)
    }
    return out
  }
}

/** From a Kafka Connect JSON schema of the envelope (`{"type":"struct","fields":[{"field":"after",...}]}`): the converter of its rows. */
export function connectEnvelopeConverter(envelopeSchema: unknown): RowConverter | undefined {
  const fields = (envelopeSchema as { fields?: { field?: string; fields?: unknown[] }[] } | null)?.fields
  const row = fields?.find((f) => f.field === 'after') ?? fields?.find((f) => f.field === 'before')
  const converters = new Map<string, Convert>()
  for (const f of (row?.fields ?? []) as { field?: string; name?: string; parameters?: Record<string, unknown> }[]) {
    const convert = converterFor(f.name, f.parameters)
    if (convert && f.field) converters.set(f.field, convert)
  }
  return rowConverter(converters)
}

/** From a Debezium Avro `Envelope` schema (as registered by the AvroConverter, with connect.* attributes): the converter of its rows. */
export function avroEnvelopeConverter(envelopeSchema: unknown): RowConverter | undefined {
  const named = new Map<string, unknown>()
  const collect = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(collect)
    if (node === null || typeof node !== 'object') return
    const n = node as { type?: unknown; name?: string; namespace?: string; fields?: { type: unknown }[] }
    if (n.type === 'record' && n.name) {
      named.set(n.name, n)
      if (n.namespace) named.set(`${n.namespace}.${n.name}`, n)
    }
    for (const f of n.fields ?? []) collect(f.type)
  }
  collect(envelopeSchema)
  const fields = (envelopeSchema as { fields?: { name: string; type: unknown }[] } | null)?.fields
  const after = fields?.find((f) => f.name === 'after') ?? fields?.find((f) => f.name === 'before')
  const resolve = (t: unknown): unknown => (typeof t === 'string' ? (named.get(t) ?? t) : t)
  const branches = Array.isArray(after?.type) ? after.type : [after?.type]
  const record = branches.map(resolve).find((b) => (b as { type?: unknown })?.type === 'record') as
    { fields?: { name: string; type: unknown }[] } | undefined
  const converters = new Map<string, Convert>()
  for (const f of record?.fields ?? []) {
    const types = Array.isArray(f.type) ? f.type : [f.type]
    const semantic = types.find((t) => typeof t === 'object' && t !== null && 'connect.name' in t) as
      { 'connect.name'?: string; 'connect.parameters'?: Record<string, unknown> } | undefined
    const convert = converterFor(semantic?.['connect.name'], semantic?.['connect.parameters'])
    if (convert) converters.set(f.name, convert)
  }
  return rowConverter(converters)
}
