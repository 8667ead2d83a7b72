// A Kafka Connect worker of the test's own (distributed mode, its own group and internal topics, a
// free loopback port), from the jars `scripts/stack.sh up` fetched into the stack folder, so a test
// can kill it with SIGKILL and start it again without touching the stack's worker.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { endpoints, uniqueName } from '../support/stack.ts'
import { freePort } from '../support/local.ts'
import { deleteAfter, type After } from '../support/runtime-waits.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const STACK = process.env.RAGSTREAM_STACK_DIR ?? join(ROOT, '.stack')
const LIB = join(STACK, 'connect', `lib-${process.env.RAGSTREAM_KAFKA_VERSION ?? '4.1.1'}`)
const PLUGINS = join(STACK, 'connect', 'plugins')

export interface ConnectWorker {
  readonly url: string
  readonly group: string
  /** SIGKILL: no graceful shutdown, no offset flush. */
  kill(): Promise<void>
  start(): Promise<void>
  log(): string
}

export async function startConnectWorker(t: After): Promise<ConnectWorker> {
  const port = await freePort()
  const group = uniqueName('test-connect')
  const dir = mkdtempSync(join(tmpdir(), 'ragstream-connect-'))
  const props = readFileSync(join(ROOT, 'stack/connect/worker.properties.tmpl'), 'utf8')
    .replaceAll('@BROKERS@', endpoints.kafkaBrokers.join(','))
    .replaceAll('@GROUP@', group)
    .replaceAll('@HOST@', '127.0.0.1')
    .replaceAll('@PORT@', String(port))
    .replaceAll('@PLUGINS@', PLUGINS)
  writeFileSync(join(dir, 'worker.properties'), props)
  const url = `http://127.0.0.1:${port}`
  let child: ChildProcess | undefined

  const ready = async (): Promise<boolean> => {
    try {
      const response = await fetch(`${url}/connector-plugins`)
      return response.ok && (await response.text()).includes('PostgresConnector')
    } catch {
      return false
    }
  }
  const worker: ConnectWorker = {
    url,
    group,
    async start() {
      child = spawn(
        'java',
        [
          '-Xms128m',
          '-Xmx512m',
          `-Dlog4j2.configurationFile=${join(ROOT, 'stack/connect/log4j2.properties')}`,
          `-Dkafka.logs.dir=${dir}`,
          '-cp',
          `${LIB}/*`,
          'org.apache.kafka.connect.cli.ConnectDistributed',
          join(dir, 'worker.properties'),
        ],
        { stdio: 'ignore' },
      )
      const started = child
      const deadline = Date.now() + 120_000
      while (!(await ready())) {
        if (started.exitCode !== null)
          throw new Error(`the Connect worker exited (${started.exitCode}): ${worker.log()}`)
        if (Date.now() > deadline) throw new Error(`the Connect worker was not ready in 120 s: ${worker.log()}`)
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    },
    async kill() {
      const running = child
      if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
      const exited = new Promise((resolve) => running.once('exit', resolve))
      running.kill('SIGKILL')
      await exited
    },
    log() {
      try {
        return readFileSync(join(dir, 'connect.log'), 'utf8')
          .split('\n')
          .filter((l) => / (ERROR|WARN) /.test(l))
          .slice(-15)
          .join('\n')
      } catch {
        return '(no log)'
      }
    },
  }
  t.after(async () => {
    await worker.kill()
    rmSync(dir, { recursive: true, force: true })
  })
  await deleteAfter(t, [`${group}-configs`, `${group}-offsets`, `${group}-status`])
  await worker.start()
  return worker
}
