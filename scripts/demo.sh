#!/usr/bin/env bash
# The README's first command. Installs what is missing (Node 24 from npm, the local stack's jars,
# pgvector), starts the stack and runs `ragstream demo`: support-copilot end to end (generator →
# exactly-once processor → pgvector sink), live progress, then a sample SQL query.
# Extra arguments go to `ragstream demo`, e.g. `npm run demo -- --duration 60 --rate 50`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
bash scripts/stack.sh status
exec node_modules/.bin/node bin/ragstream.ts demo "$@"
