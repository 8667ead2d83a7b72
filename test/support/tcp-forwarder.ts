// A TCP forwarder to a real service, so a test can make that service unreachable (and back) for one
// client without stopping it for everybody: `down()` refuses new connections and cuts open ones.
import { connect, createServer, type Server, type Socket } from 'node:net'
import { freePort } from './local.ts'

export interface TcpForwarder {
  readonly port: number
  down(): Promise<void>
  up(): Promise<void>
}

export async function startTcpForwarder(
  t: { after: (fn: () => Promise<void>) => void },
  target: URL,
): Promise<TcpForwarder> {
  const port = await freePort()
  const targetPort = Number(target.port || (target.protocol === 'https:' ? 443 : 80))
  const sockets = new Set<Socket>()
  let server: Server | undefined
  const up = async (): Promise<void> => {
    server = createServer((socket) => {
      const upstream = connect(targetPort, target.hostname)
      sockets.add(socket).add(upstream)
      const close = (): void => {
        socket.destroy()
        upstream.destroy()
        sockets.delete(socket)
        sockets.delete(upstream)
      }
      socket.on('error', close).on('close', close)
      upstream.on('error', close).on('close', close)
      socket.pipe(upstream).pipe(socket)
    })
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve))
  }
  const down = async (): Promise<void> => {
    const closing = server
    server = undefined
    for (const socket of sockets) socket.destroy()
    sockets.clear()
    if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()))
  }
  await up()
  t.after(down)
  return { port, down, up }
}
