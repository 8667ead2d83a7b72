import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { EXIT, type CommandSpec } from '../command.ts'
import { packageFile } from '../../package-files.ts'

const script = fileURLToPath(packageFile('scripts/stack.sh'))

/** `ragstream stack up|down|status` — the local stack without Docker (wraps scripts/stack.sh). */
export const stackCommand: CommandSpec = {
  name: 'stack',
  summary: 'Start, stop or inspect the local stack (Kafka, schema registry, Redis, PostgreSQL + pgvector).',
  args: '<up|down|status>',
  options: {},
  details:
    'Endpoints come from RAGSTREAM_* environment variables; see the README.\nExit codes: 0 ok, 1 a service failed to start, 2 usage.',
  async run({ positionals, stderr }) {
    const action = positionals[0]
    if (!action || !['up', 'down', 'status'].includes(action)) {
      stderr.write('usage: ragstream stack <up|down|status>\n')
      return EXIT.usage
    }
    return new Promise((resolve) => {
      const child = spawn('bash', [script, action], { stdio: 'inherit' })
      child.on('exit', (code) => resolve(code ?? EXIT.failure))
    })
  },
}
