// Store values and internal-topic payloads are JSON for now (design: Avro at the output edge only).

export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8')
}

export function decodeJson(bytes: Buffer): unknown {
  return JSON.parse(bytes.toString('utf8'))
}
