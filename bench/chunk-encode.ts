/**
 * The chunk event's Avro encode (issue 18), base vs new in one run: `base` is how the codec encoded
 * until 2026-12-07 (the Float32Array embedding copied into an Array, avsc's `toBuffer` — which
 * writes a value over 1 KiB twice — then the wire header concatenated, and every long through an
 * 8-byte Buffer and a BigInt); `new` is `chunkEventAvroCodec`'s encode (one pass into a scratch
 * buffer, the embedding's bytes copied at once, longs without BigInts). Both must give the same
 * bytes (checked first). Measured two ways, alternating base and new call by call:
 *   hot     — back to back, as a backfill encodes;
 *   spaced  — one call every BENCH_GAP_MS (default 10), as at 50 updates/s, where caches and branch
 *             predictors are cold and a call costs several times its hot figure.
 * CPU is process.cpuUsage (user+system) around each call (spaced) or each block (hot).
 *
 *   node bench/chunk-encode.ts        # BENCH_DIMS=384 BENCH_HOT=20000 BENCH_SPACED=300; needs the schema registry
 */
import { loadavg } from 'node:os'
import avsc from 'avsc'
import { endpointsFromEnv } from '../src/config/endpoints.ts'
import { hashingEmbed } from '../src/embedding/hashing.ts'
import { chunkEventAvroCodec } from '../src/serde/chunk-event-codec.ts'
import { CHUNK_EVENT_SCHEMA, type ChunkEvent } from '../src/serde/chunk-event.ts'
import { wireHeader } from '../src/serde/wire.ts'

const DIMS = Number(process.env.BENCH_DIMS ?? 384)
const HOT = Number(process.env.BENCH_HOT ?? 20000)
const SPACED = Number(process.env.BENCH_SPACED ?? 300)
const GAP_MS = Number(process.env.BENCH_GAP_MS ?? 10)

// The long type as it was: a new Buffer and a BigInt per long.
const OLD_LONG = avsc.types.LongType.__with({
  fromBuffer: (buffer: Buffer) => Number(buffer.readBigInt64LE()),
  toBuffer: (n: number | bigint) => {
    const buffer = Buffer.alloc(8)
    buffer.writeBigInt64LE(BigInt(n))
    return buffer
  },
  fromJSON: (n: number | string) => Number(n),
  toJSON: (n: number | bigint) => Number(n),
  isValid: (n: unknown) => (typeof n === 'number' && Number.isInteger(n)) || typeof n === 'bigint',
  compare: (a: number, b: number) => (a < b ? -1 : a > b ? 1 : 0),
})
const oldType = avsc.Type.forSchema(CHUNK_EVENT_SCHEMA as avsc.Schema, {
  typeHook: (s) => (s === 'long' || (s as { type?: unknown }).type === 'long' ? OLD_LONG : undefined),
})

const codec = await chunkEventAvroCodec({
  registryUrl: endpointsFromEnv().schemaRegistryUrl,
  topic: 'rag.chunks.bench-chunk-encode',
})
const header = wireHeader(codec.schemaId)
function baseEncode(event: ChunkEvent): Buffer {
  const source = event.embedding
  const embedding: number[] = new Array(source.length)
  for (let i = 0; i < source.length; i++) embedding[i] = source[i]
  const body = oldType.toBuffer({ ...event, embedding })
  return Buffer.concat([header, body], header.length + body.length)
}
const newEncode = (event: ChunkEvent) => codec.encode(event) as Buffer

const events: ChunkEvent[] = Array.from({ length: 64 }, (_, i) => {
  const text = `Ticket ${i}\nCustomer tier: tier-1 | Product: null\n\nThe export of report ${i} stops after version 3; the customer needs it by Friday.`
  const now = 1_780_000_000_000 + i
  return {
    chunk_id: `3f2a9c${String(i).padStart(26, '0')}`,
    entity_type: 'ticket',
    entity_key: String(i),
    chunk_index: 0,
    text,
    embedding: hashingEmbed(text, DIMS),
    content_hash: 'a'.repeat(64),
    metadata: JSON.stringify({ title: `Ticket ${i}`, status: 'open', priority: 2, tier: 'tier-1' }),
    classification: 'internal',
    tenant: 'acme',
    region: 'eu',
    subjects: [`customer:${i}`],
    policy_version: 'support-copilot@2',
    lineage: {
      source_topic: 'bench.public.tickets',
      source_partition: i % 2,
      source_offset: 100_000 + i,
      source_timestamp_ms: now,
      source_position: null,
      source_table: 'tickets',
      topology: 'support-copilot',
      topology_version: 'v1',
      chunker: 'recursive(size=600,overlap=0,unit=chars)',
      embedding_model: `hashing:v1@${DIMS}`,
      emitted_at_ms: now + 5,
      change: {
        topic: 'bench.public.tickets',
        partition: i % 2,
        offset: 100_000 + i,
        timestamp_ms: now,
        appended_at_ms: now + 2,
      },
    },
  }
})
for (const e of events)
  if (!baseEncode(e).equals(newEncode(e))) throw new Error(`base and new encode ${e.chunk_id} differently`)

const cpuUs = () => {
  const u = process.cpuUsage()
  return u.user + u.system
}
const variants = { base: baseEncode, new: newEncode }
const hot = { base: 0, new: 0 }
for (let round = 0; round < 4; round++)
  for (const name of ['base', 'new'] as const) {
    const encode = variants[name]
    const begun = cpuUs()
    for (let i = 0; i < HOT / 4; i++) encode(events[i % events.length])
    if (round > 0) hot[name] += cpuUs() - begun // round 0 warms up
  }
const spaced = { base: 0, new: 0 }
for (let i = 0; i < SPACED; i++)
  for (const name of i % 2 === 0 ? (['base', 'new'] as const) : (['new', 'base'] as const)) {
    await new Promise((resolve) => setTimeout(resolve, GAP_MS))
    const begun = cpuUs()
    variants[name](events[i % events.length])
    spaced[name] += cpuUs() - begun
  }
const hotPer = (n: string) => hot[n as 'base'] / ((HOT / 4) * 3)
const spacedPer = (n: string) => spaced[n as 'base'] / SPACED
process.stdout.write(
  `chunk event encode, ${DIMS} dims (${newEncode(events[0]).length} bytes), µs CPU per event:\n` +
    `  hot:    base ${hotPer('base').toFixed(2)}  new ${hotPer('new').toFixed(2)}  new/base ${(hotPer('new') / hotPer('base')).toFixed(2)}\n` +
    `  spaced: base ${spacedPer('base').toFixed(1)}  new ${spacedPer('new').toFixed(1)}  new/base ${(spacedPer('new') / spacedPer('base')).toFixed(2)} (one call every ${GAP_MS} ms)\n` +
    `machine load average (1/5/15 min): ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}\n`,
)
