// Redaction throughput: 1 KB support tickets (half with seeded PII and secrets, half clean) through
// every detector, against a no-op baseline in the same run and process. Prints MB/s and µs per ticket.
//   node bench/governance.ts        (or: npm run bench -- governance)
import { compilePolicy } from '../src/governance/policy.ts'
import { buildRedactor, type RedactionCounts, type Redactor } from '../src/governance/redact/redactor.ts'
import { generateCleanCorpus, generateLabelledCorpus } from '../test/fixtures/governance/corpus.ts'

const TICKET_BYTES = 1024
const env = { RAGSTREAM_PSEUDONYM_KEY: 'bench-key-0123456789abcdef0123456789abcdef' }

function tickets(): string[] {
  const seeded = generateLabelledCorpus({ seed: 1, perKind: 200 })
    .tickets.map((t) => t.text)
    .join('\n\n')
  const clean = generateCleanCorpus({ seed: 2, tickets: 1500 })
    .map((t) => t.text)
    .join('\n\n')
  const out: string[] = []
  for (const text of [seeded, clean]) {
    for (let at = 0; at + TICKET_BYTES <= text.length; at += TICKET_BYTES) out.push(text.slice(at, at + TICKET_BYTES))
  }
  // Interleave so both kinds meet the JIT equally.
  return out.sort((a, b) => a.charCodeAt(7) - b.charCodeAt(7) || a.length - b.length)
}

const noop: Redactor = {
  kinds: [],
  redactText: (text) => text,
  redactMetadata: (m) => m,
  contextOf: () => undefined,
}

interface Case {
  readonly name: string
  readonly run: (text: string) => number
}

function measure(
  c: Case,
  inputs: readonly string[],
  seconds: number,
): { mbPerS: number; usPerTicket: number; sink: number } {
  let sink = 0
  for (let i = 0; i < Math.min(inputs.length, 2000); i++) sink += c.run(inputs[i]) // warm-up
  ;(globalThis as { gc?: () => void }).gc?.()
  let n = 0
  let bytes = 0
  const start = process.hrtime.bigint()
  const deadline = start + BigInt(Math.round(seconds * 1e9))
  let now = start
  while (now < deadline) {
    for (let i = 0; i < inputs.length; i++) {
      sink += c.run(inputs[i])
      bytes += inputs[i].length
    }
    n += inputs.length
    now = process.hrtime.bigint()
  }
  const elapsed = Number(now - start) / 1e9
  return { mbPerS: bytes / elapsed / 1e6, usPerTicket: (elapsed / n) * 1e6, sink }
}

function redactCase(name: string, redactor: Redactor): Case {
  return {
    name,
    run: (text) => {
      const counts: RedactionCounts = {}
      return redactor.redactText(text, counts).length
    },
  }
}

const policy = compilePolicy(
  {
    name: 'bench',
    version: '1',
    classify: () => 'internal',
    subjects: (r) => [`customer:${r.key.length}`],
    redact: { detectors: { email: 'pseudonymise' } },
  },
  { topology: 'bench', env },
)

const inputs = tickets()
const seconds = Number(process.env.BENCH_SECONDS ?? 3)
// A second reference: the cheapest possible scanner, reading every character once through a class
// table (what any single-pass detector costs at least on this machine).
const TOKEN = new Uint8Array(128)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789') TOKEN[c.charCodeAt(0)] = 1
const readEveryChar: Case = {
  name: 'reference: read every character once (class-table loop)',
  run: (text) => {
    let n = 0
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c < 128 && TOKEN[c] === 1) n++
    }
    return n
  },
}

const cases: Case[] = [
  redactCase('no-op baseline (same loop, no detectors)', noop),
  readEveryChar,
  redactCase('all detectors, mask', buildRedactor({}, env)),
  redactCase('all detectors, pseudonymise (HMAC-SHA256)', buildRedactor({ defaultAction: 'pseudonymise' }, env)),
  {
    name: 'compiled govern() (subjects, classify, redact text + metadata)',
    run: (text) => {
      const d = policy.govern({ key: 'ticket:1', text, metadata: { title: 'ticket' }, timestampMs: 1 }, {})
      return d.action === 'emit' ? d.text.length : 0
    },
  },
]

console.log(`${inputs.length} tickets of ${TICKET_BYTES} chars, ${seconds}s per case, node ${process.version}`)
let baseline = 0
for (const c of cases) {
  const r = measure(c, inputs, seconds)
  if (baseline === 0) baseline = r.usPerTicket
  console.log(
    `${c.name.padEnd(66)} ${r.mbPerS.toFixed(1).padStart(9)} MB/s ${r.usPerTicket.toFixed(2).padStart(9)} µs/ticket${c === cases[0] ? '' : `  (+${(r.usPerTicket - baseline).toFixed(2)} µs over baseline)`}`,
  )
}
