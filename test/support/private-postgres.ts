// A PostgreSQL server of the test's own (initdb in a temp dir, a free loopback port), so a test can
// restart it — fast or immediate — without disturbing other suites that share the machine's server.
// Uses the newest installed server binaries and the system-wide pgvector extension files.
import { execFileSync } from 'node:child_process'
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './local.ts'

export interface PrivatePostgres {
  readonly url: string
  restart(mode: 'fast' | 'immediate'): void
  stop(): void
}

function asPostgres(bin: string, args: string[]): void {
  const command =
    process.getuid?.() === 0 ? (['runuser', ['-u', 'postgres', '--', bin, ...args]] as const) : ([bin, args] as const)
  execFileSync(command[0], command[1], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 })
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const major = readdirSync('/usr/lib/postgresql')
    .filter((d) => /^\d+$/.test(d))
    .sort((a, b) => Number(a) - Number(b))
    .at(-1)
  if (!major) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql')
  const bin = `/usr/lib/postgresql/${major}/bin`
  const dir = mkdtempSync(join(tmpdir(), 'ragstream-pg-'))
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString())
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString())
    chownSync(dir, uid, gid)
  }
  const data = join(dir, 'data')
  const port = await freePort()
  asPostgres(`${bin}/initdb`, ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'])
  const pgCtl = (...args: string[]): void => asPostgres(`${bin}/pg_ctl`, ['-D', data, '-w', '-t', '60', ...args])
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`
  pgCtl('-l', join(dir, 'server.log'), '-o', options, 'start')
  return {
    url: `postgres://postgres@127.0.0.1:${port}`,
    restart(mode) {
      pgCtl('-m', mode, '-l', join(dir, 'server.log'), '-o', options, 'restart')
    },
    stop() {
      try {
        pgCtl('-m', 'immediate', 'stop')
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}
