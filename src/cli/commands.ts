// The command table: name → lazily loaded spec, so `ragstream --help` loads no client libraries.
import type { CommandSpec } from './command.ts'

export const COMMANDS: Readonly<Record<string, () => Promise<CommandSpec>>> = {
  new: async () => (await import('./commands/new.ts')).newCommand,
  generate: async () => (await import('./commands/generate.ts')).generateCommand,
  stack: async () => (await import('./commands/stack.ts')).stackCommand,
  models: async () => (await import('./commands/models.ts')).modelsCommand,
  sink: async () => (await import('./commands/sink.ts')).sinkCommand,
  query: async () => (await import('./commands/query.ts')).queryCommand,
  forget: async () => (await import('./commands/forget.ts')).forgetCommand,
  describe: async () => (await import('./commands/describe.ts')).describeCommand,
  run: async () => (await import('./commands/run.ts')).runCommand,
  demo: async () => (await import('./commands/demo.ts')).demoCommand,
  status: async () => (await import('./commands/status.ts')).statusCommand,
  replay: async () => (await import('./commands/replay.ts')).replayCommand,
  promote: async () => (await import('./commands/promote.ts')).promoteCommand,
}
