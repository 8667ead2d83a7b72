#!/usr/bin/env bash
# The README's test command: installs what is missing, starts the local stack, type-checks, lints,
# checks formatting (scripts/lint.sh), and runs every test file under test/ with Node's test runner
# on Node 24 (node_modules/.bin/node).
# Extra arguments are passed to `node --test` (e.g. a file path or --test-name-pattern).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
export PATH="$ROOT/node_modules/.bin:$PATH"
bash scripts/lint.sh
# Every test ends within 4 minutes (a test may ask for more with its own { timeout }): a hang fails
# that test with a message instead of stalling the suite. RAGSTREAM_TEST_TIMEOUT_MS overrides it.
# --test-force-exit: a test file whose tests are done exits even if a leaked handle would keep it alive.
# scripts/test-preload.js keeps --test-force-exit from dropping verdicts (see the file).
TIMEOUT="--test-timeout=${RAGSTREAM_TEST_TIMEOUT_MS:-240000} --test-force-exit --import ./scripts/test-preload.js"
if [ $# -gt 0 ]; then
  exec node --test --test-concurrency="${RAGSTREAM_TEST_CONCURRENCY:-2}" $TIMEOUT "$@"
fi
exec node --test --test-concurrency="${RAGSTREAM_TEST_CONCURRENCY:-2}" $TIMEOUT 'test/**/*.test.ts'
