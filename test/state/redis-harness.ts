// Test support for the Redis stores: a conformance harness over a fresh application namespace, a
// server-side command observer (MONITOR, filtered to the store's own connections) and a private
// redis-server for tests that must lose data or stall a server without touching the shared one.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { Cluster, Redis } from 'ioredis'
import { RedisStateBackend } from '../../src/state/redis-store.ts'
import type { RedisTarget } from '../../src/state/redis-store.ts'
import { uniqueName } from '../support/stack.ts'
import type { StoreHarness } from './conformance.ts'
import { freePort } from '../support/local.ts'

/** The Redis node connections (single server, or every cluster master) a backend talks through. */
function nodeClients(client: Redis | Cluster): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client]
}

/** Deletes every key of an application namespace on each node (SCAN, never FLUSHALL: the server is shared). */
export async function deleteNamespace(client: Redis | Cluster, applicationId: string): Promise<void> {
  for (const node of nodeClients(client)) {
    let cursor = '0'
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `rs:{${applicationId}:*`, 'COUNT', 1000)
      cursor = next
      // One UNLINK per key: on a cluster node the keys of a batch live in different slots.
      if (keys.length > 0) await keys.reduce((pipeline, key) => pipeline.unlink(key), node.pipeline()).exec()
    } while (cursor !== '0')
  }
}

/**
 * A MONITOR connection on a plain socket. ioredis' monitor() fails with "Command queue state error"
 * when the first monitored commands arrive in the same read as MONITOR's +OK (a busy shared server
 * does that), so the lines are read here: `+<time> [<db> <client address>] "cmd" "arg" …`.
 */
async function monitor(
  host: string,
  port: number,
  password: string | undefined,
  onCommand: (args: string[], source: string) => void,
): Promise<Socket> {
  const socket = connect({ host, port })
  await once(socket, 'connect')
  const quote = (arg: string): string => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`
  const auth = password === undefined ? '' : `*2\r\n${quote('AUTH')}${quote(password)}`
  socket.write(`${auth}*1\r\n${quote('MONITOR')}`)
  let pending = ''
  let oks = password === undefined ? 1 : 2 // AUTH's +OK, then MONITOR's
  let ok!: () => void
  let failed!: (error: Error) => void
  const started = new Promise<void>((resolve, reject) => ((ok = resolve), (failed = reject)))
  socket.on('error', (error) => failed(error))
  socket.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1')
    let at: number
    while ((at = pending.indexOf('\r\n')) >= 0) {
      const line = pending.slice(0, at)
      pending = pending.slice(at + 2)
      if (line.startsWith('-')) failed(new Error(`MONITOR refused: ${line.slice(1)}`))
      else if (line === '+OK') {
        if (--oks === 0) ok()
      } else {
        const header = /^\+[\d.]+ \[\d+ ([^\]]+)\] /.exec(line)
        if (!header) continue
        const args = [...line.slice(header[0].length).matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
          m[1].replace(/\\(x[0-9a-f]{2}|.)/g, (_, c: string) =>
            c.length === 3 ? String.fromCharCode(parseInt(c.slice(1), 16)) : c === 'n' ? '\n' : c === 'r' ? '\r' : c,
          ),
        )
        onCommand(args, header[1])
      }
    }
  })
  await started
  return socket
}

/**
 * Runs `action` and returns the commands the backend's own connections sent to Redis while it ran,
 * as the servers saw them (MONITOR). Marker commands on a key in the partition's slot bracket the
 * action, so commands of other clients and of other moments are excluded.
 */
export async function commandsDuring(
  backend: RedisStateBackend,
  store: string,
  partition: number,
  action: () => Promise<void>,
): Promise<string[]> {
  const client = backend.client
  const marker = (label: string): string => `${backend.partitionKey(store, partition)}:marker-${label}-${randomUUID()}`
  const begin = marker('begin')
  const end = marker('end')
  await client.exists(marker('warmup')) // makes sure the connection to the partition's node is up
  const nodes = nodeClients(client).filter((n) => n.stream !== undefined)
  const sources = new Set(nodes.map((n) => `${n.stream.localAddress}:${n.stream.localPort}`))
  const seen: { args: string[]; source: string }[] = []
  let sawEnd!: () => void
  const ended = new Promise<void>((resolve) => (sawEnd = resolve))
  const monitors = await Promise.all(
    nodes.map((n) =>
      monitor(
        n.options.host ?? '127.0.0.1',
        n.options.port ?? 6379,
        n.options.password || undefined,
        (args, source) => {
          if (!sources.has(source)) return
          seen.push({ args, source })
          if (args[1] === end) sawEnd()
        },
      ),
    ),
  )
  try {
    await client.exists(begin)
    await action()
    await client.exists(end)
    await Promise.race([
      ended,
      new Promise((_, reject) => setTimeout(() => reject(new Error('MONITOR never saw the end marker')), 5000)),
    ])
  } finally {
    for (const connection of monitors) connection.destroy()
  }
  const from = seen.findIndex((c) => c.args[1] === begin)
  const to = seen.findIndex((c) => c.args[1] === end)
  if (from < 0) throw new Error('MONITOR never saw the begin marker')
  return seen.slice(from + 1, to).map((c) => `${c.args[0]}(${c.args.length - 1} args)`)
}

/** A conformance harness on a fresh application namespace of `target`, cleaned up after the test. */
export async function redisStoreHarness(
  t: TestContext,
  target: RedisTarget,
): Promise<StoreHarness & { backend: RedisStateBackend }> {
  const applicationId = uniqueName('rs-test')
  const backend = new RedisStateBackend({ applicationId, target })
  t.after(async () => {
    try {
      await deleteNamespace(backend.client, applicationId)
    } finally {
      await backend.close()
    }
  })
  return {
    backend,
    open: (name) => backend.store(name),
    commandsDuring: (store, partition, action) => commandsDuring(backend, store, partition, action),
  }
}

export interface PrivateRedis {
  readonly port: number
  readonly url: string
  /** A plain client on the private server (FLUSHALL and CLIENT PAUSE are allowed here). */
  readonly admin: Redis
  stop(): Promise<void>
  /** Starts the server again; with `untilLoaded: false`, returns once it accepts connections (it may still be LOADING). */
  start(options?: { untilLoaded?: boolean }): Promise<void>
}

/**
 * A redis-server this test owns, on a spare loopback port, without automatic snapshots, in its own
 * temporary directory; stopped (and the directory removed) in t.after. `stop()`/`start()` simulate
 * a restart on the same port; a snapshot taken with SAVE is loaded again on start.
 */
export async function startPrivateRedis(t: TestContext, extraArgs: string[] = []): Promise<PrivateRedis> {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'rs-redis-'))
  let child: ChildProcess | undefined
  const admin = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => 100,
  })
  admin.on('error', () => {})
  const start = async ({ untilLoaded = true }: { untilLoaded?: boolean } = {}): Promise<void> => {
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...extraArgs,
    ]
    child = spawn('redis-server', args, { stdio: 'ignore' })
    const deadline = Date.now() + 10_000
    for (;;) {
      try {
        const probe = new Redis({
          host: '127.0.0.1',
          port,
          lazyConnect: true,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
          enableReadyCheck: false,
        })
        probe.on('error', () => {})
        await probe.connect()
        if (untilLoaded) await probe.ping()
        probe.disconnect()
        return
      } catch (error) {
        if (Date.now() > deadline)
          throw new Error(`private redis-server on port ${port} did not start: ${String(error)}`, { cause: error })
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  }
  const stop = async (): Promise<void> => {
    const running = child
    child = undefined
    if (!running || running.exitCode !== null) return
    const exited = new Promise((resolve) => running.once('exit', resolve))
    running.kill('SIGTERM')
    await exited
  }
  await start()
  await admin.connect()
  t.after(async () => {
    admin.disconnect()
    await stop()
    await rm(dir, { recursive: true, force: true })
  })
  return { port, url: `redis://127.0.0.1:${port}`, admin, stop, start }
}

export interface PrivateCluster {
  readonly nodes: { host: string; port: number }[]
  /** One admin client per node, in `nodes` order. */
  readonly admins: Redis[]
  /** The node id and index of the master serving `slot`. */
  owner(slot: number): Promise<{ id: string; index: number }>
  nodeId(index: number): Promise<string>
}

/** A 3-master Redis Cluster this test owns (spare loopback ports, own directory); stopped in t.after. */
export async function startPrivateCluster(t: TestContext): Promise<PrivateCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'rs-cluster-'))
  const ports = [await freePort(), await freePort(), await freePort()]
  const children = ports.map((port) =>
    spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    ),
  )
  const admins = ports.map((port) => {
    const admin = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      retryStrategy: () => 100,
    })
    admin.on('error', () => {})
    return admin
  })
  t.after(async () => {
    for (const admin of admins) admin.disconnect()
    await Promise.all(
      children.map((child) => {
        if (child.exitCode !== null) return Promise.resolve()
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        return exited
      }),
    )
    await rm(dir, { recursive: true, force: true })
  })
  const deadline = Date.now() + 15_000
  for (const admin of admins) {
    for (;;) {
      try {
        if (admin.status === 'wait') await admin.connect()
        await admin.ping()
        break
      } catch (error) {
        if (Date.now() > deadline)
          throw new Error(`private cluster node did not start: ${String(error)}`, { cause: error })
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  }
  await new Promise<void>((resolve, reject) => {
    const create = spawn(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { stdio: 'ignore' },
    )
    create.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create exited with ${code}`)),
    )
  })
  for (const admin of admins) {
    while (!String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('private cluster did not reach cluster_state:ok')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const nodeId = async (index: number): Promise<string> => String(await admins[index].call('CLUSTER', 'MYID'))
  return {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    admins,
    nodeId,
    async owner(slot) {
      const slots = (await admins[0].call('CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][]
      const range = slots.find(([from, to]) => slot >= from && slot <= to)
      if (!range) throw new Error(`no owner for slot ${slot}`)
      const index = ports.indexOf(Number(range[2][1]))
      return { id: await nodeId(index), index }
    },
  }
}
