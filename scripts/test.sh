#!/usr/bin/env bash
# The README's test command: installs what is missing, starts the local stack, type-checks, and runs
# every test file under test/ with Node's test runner on Node 24 (node_modules/.bin/node).
# Extra arguments are passed to `node --test` (e.g. a file path or --test-name-pattern).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
export PATH="$ROOT/node_modules/.bin:$PATH"
echo "[test] tsc --noEmit" >&2
tsc --noEmit -p .
if [ $# -gt 0 ]; then
  exec node --test --test-concurrency="${RAGSTREAM_TEST_CONCURRENCY:-2}" "$@"
fi
exec node --test --test-concurrency="${RAGSTREAM_TEST_CONCURRENCY:-2}" --test-timeout=600000 'test/**/*.test.ts'
