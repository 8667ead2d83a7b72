// A Kafka broker of the test's own (KRaft, one node, a temp data dir, free loopback ports), started
// from the local stack's jars ($RAGSTREAM_STACK_DIR/kafka/lib-*), so a fault test can kill and
// restart it without disturbing the shared broker every other suite uses.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { freePort } from './local.ts'

export interface PrivateKafka {
  readonly brokers: readonly string[]
  /** SIGKILL: no clean shutdown, as a crashed or powered-off broker. Resolves when the process is gone. */
  kill(): Promise<void>
  /** Starts it again on the same ports and data; resolves when it serves. */
  start(): Promise<void>
  /** Kills it and removes its data. */
  stop(): Promise<void>
}

const ROOT = resolve(import.meta.dirname, '../..')

function kafkaLib(): string {
  const stack = process.env.RAGSTREAM_STACK_DIR ?? join(ROOT, '.stack')
  const dir = join(stack, 'kafka')
  const lib = existsSync(dir) ? readdirSync(dir).find((d) => d.startsWith('lib-')) : undefined
  if (!lib || !existsSync(join(dir, lib, '.complete')))
    throw new Error(`no Kafka jars under ${dir} (run scripts/stack.sh up once)`)
  return join(dir, lib)
}

export async function startPrivateKafka(): Promise<PrivateKafka> {
  const lib = kafkaLib()
  const dir = mkdtempSync(join(tmpdir(), 'ragstream-kafka-'))
  const data = join(dir, 'data')
  const logs = join(dir, 'logs')
  mkdirSync(logs)
  const port = await freePort()
  const controllerPort = await freePort()
  const props = join(dir, 'server.properties')
  const template = readFileSync(join(ROOT, 'stack/kafka/server.properties.tmpl'), 'utf8')
  writeFileSync(
    props,
    template
      .replaceAll('@HOST@', '127.0.0.1')
      .replaceAll('@PORT@', String(port))
      .replaceAll('@CONTROLLER_PORT@', String(controllerPort))
      .replaceAll('@DATA@', data),
  )
  const java = ['-Xms128m', '-Xmx512m', `-Dlog4j2.configurationFile=${join(ROOT, 'stack/kafka/log4j2.properties')}`]
  const cp = ['-cp', `${lib}/*`]
  const clusterId = execFileSync('java', [
    ...java,
    `-Dkafka.logs.dir=${logs}`,
    ...cp,
    'kafka.tools.StorageTool',
    'random-uuid',
  ])
    .toString()
    .trim()
  execFileSync(
    'java',
    [...java, `-Dkafka.logs.dir=${logs}`, ...cp, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', props],
    { stdio: 'ignore', timeout: 120_000 },
  )

  let child: ChildProcess | undefined
  const serverLog = join(logs, 'server.log')
  const start = async (): Promise<void> => {
    writeFileSync(serverLog, '')
    child = spawn('java', [...java, '-XX:+UseG1GC', `-Dkafka.logs.dir=${logs}`, ...cp, 'kafka.Kafka', props], {
      stdio: 'ignore',
      detached: false,
    })
    const deadline = Date.now() + 120_000
    while (!readFileSync(serverLog, 'utf8').includes('Kafka Server started')) {
      if (child.exitCode !== null) throw new Error(`the private broker exited with ${child.exitCode}; see ${serverLog}`)
      if (Date.now() > deadline) throw new Error(`the private broker did not start within 120 s; see ${serverLog}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  const kill = async (): Promise<void> => {
    const running = child
    child = undefined
    if (!running || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise((r) => running.once('exit', r))
    running.kill('SIGKILL')
    await exited
  }
  await start()
  return {
    brokers: [`127.0.0.1:${port}`],
    kill,
    start,
    async stop() {
      await kill()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
