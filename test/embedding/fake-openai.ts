// A local fake of an OpenAI-compatible /v1/embeddings server (node:http on 127.0.0.1, random port),
// recording every request so tests can check batching, concurrency, retries and headers.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { hashingEmbed } from '../../src/embedding/hashing.ts'

export interface FakeRequest {
  readonly model: string
  readonly input: string[]
  readonly headers: IncomingMessage['headers']
  readonly url: string
  readonly at: number
}

/** Returns true when it answered the request itself; otherwise the fake answers with vectors of `dimensions`. */
export type Intercept = (request: FakeRequest, n: number, res: ServerResponse) => boolean | Promise<boolean>

export async function startFakeOpenAI(
  t: { after: (fn: () => Promise<void>) => void },
  options: { dimensions: number; intercept?: Intercept; latencyMs?: number },
) {
  const requests: FakeRequest[] = []
  let inFlight = 0
  let maxInFlight = 0
  const server = createServer(async (req, res) => {
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    try {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model: string; input: string[] }
      const request = { model: body.model, input: body.input, headers: req.headers, url: req.url ?? '', at: Date.now() }
      requests.push(request)
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/v1/embeddings' || req.method !== 'POST') {
        res.writeHead(404).end()
        return
      }
      if (options.latencyMs) await new Promise((r) => setTimeout(r, options.latencyMs))
      if (options.intercept && (await options.intercept(request, requests.length, res))) return
      const data = body.input.map((text, index) => ({
        object: 'embedding',
        index,
        embedding: Array.from(hashingEmbed(text, options.dimensions)),
      }))
      // Answer out of order: clients must place vectors by `index`.
      data.reverse()
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(
        JSON.stringify({
          object: 'list',
          data,
          model: body.model,
          usage: { prompt_tokens: body.input.length * 3, total_tokens: body.input.length * 3 },
        }),
      )
    } finally {
      inFlight--
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    get maxInFlight() {
      return maxInFlight
    },
  }
}
