#!/usr/bin/env node
// The `ragstream` command as installed from a package: Node does not strip types under
// node_modules, so an installed package runs the JavaScript built into dist/ (`npm run build`, run by
// `npm pack` and `npm publish`). In a checkout it runs the TypeScript sources, like bin/ragstream.ts.
const major = Number(process.versions.node.split('.')[0])
if (major < 24) {
  process.stderr.write(
    `error RS_CONFIG_INVALID: ragstream needs Node.js 24 or later; this is Node.js v${process.versions.node} (${process.execPath})\n` +
      'hint: topology files are TypeScript, which Node.js runs as is from version 24 on: install it (nvm install 24, or\n' +
      '      npx -p node@24 -- ragstream …); in a ragstream checkout, node_modules/.bin/node is Node.js 24\n',
  )
  process.exit(78)
}
const installed = import.meta.url.includes('/node_modules/')
const entry = new URL(installed ? '../dist/src/cli/main.js' : '../src/cli/main.ts', import.meta.url)
const { main } = await import(entry.href)
process.exitCode = await main(process.argv.slice(2))
