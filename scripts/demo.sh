#!/usr/bin/env bash
# The README's first command. Installs what is missing (Node 24 from npm, the local stack's jars,
# pgvector), starts the stack and runs the main job end to end.
# Today the main job is the stack smoke check: a transactional produce/consume, an Avro round trip
# through the registry, Redis and a pgvector HNSW query. It becomes `ragstream demo` when the demo
# topology lands.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
bash scripts/stack.sh status
exec node_modules/.bin/node --test --test-reporter=spec test/smoke/*.test.ts
