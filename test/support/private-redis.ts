// A Redis server of the test's own (no persistence, a free loopback port, a password), so a test can
// kill and restart it mid-run without disturbing the shared Redis every other suite uses.
import { spawn, type ChildProcess } from 'node:child_process'
import { Redis } from 'ioredis'
import { freePort } from './local.ts'

export interface PrivateRedis {
  /** `redis://:<password>@127.0.0.1:<port>` */
  readonly url: string
  /** SIGKILL: gone at once, as a crashed server; resolves when the process is gone. */
  kill(): Promise<void>
  /** Starts it again on the same port, empty (no persistence); resolves when it answers PING. */
  start(): Promise<void>
  stop(): Promise<void>
}

export async function startPrivateRedis(password: string): Promise<PrivateRedis> {
  const port = await freePort()
  const url = `redis://:${password}@127.0.0.1:${port}`
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    )
    const deadline = Date.now() + 20_000
    for (;;) {
      const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
      probe.on('error', () => {})
      const ok = await probe
        .connect()
        .then(() => probe.ping())
        .then(
          () => true,
          () => false,
        )
      probe.disconnect()
      if (ok) return
      if (child.exitCode !== null) throw new Error(`the private redis-server exited with ${child.exitCode}`)
      if (Date.now() > deadline) throw new Error('the private redis-server did not answer within 20 s')
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const kill = async (): Promise<void> => {
    const running = child
    if (!running || running.exitCode !== null || running.signalCode !== null) return
    const gone = new Promise((resolve) => running.once('exit', resolve))
    running.kill('SIGKILL')
    await gone
  }
  await start()
  return { url, kill, start, stop: kill }
}
