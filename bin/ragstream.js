#!/usr/bin/env node
// The `ragstream` command as installed from a package: Node does not strip types under
// node_modules, so an installed package runs the JavaScript built into dist/ (`npm run build`, run by
// `npm pack` and `npm publish`). In a checkout it runs the TypeScript sources, like bin/ragstream.ts.
const installed = import.meta.url.includes('/node_modules/')
const entry = new URL(installed ? '../dist/src/cli/main.js' : '../src/cli/main.ts', import.meta.url)
const { main } = await import(entry.href)
process.exitCode = await main(process.argv.slice(2))
