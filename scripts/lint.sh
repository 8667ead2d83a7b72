#!/usr/bin/env bash
# Static checks run by `npm test` before any test: types (tsc), lint rules (ESLint, type-aware) and
# formatting (Prettier, 120 columns). `npm run format` rewrites files to Prettier's format.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/node_modules/.bin:$PATH"
# A tracked node_modules (a worktree's symlink committed by mistake) replaces the installed packages of
# every checkout it is merged into: refuse it before anything else.
if [ -n "$(git ls-files -- node_modules 2>/dev/null)" ]; then
  echo "[lint] node_modules is tracked by git: git rm --cached node_modules (it must stay untracked)" >&2
  exit 1
fi
echo "[lint] tsc --noEmit" >&2
tsc --noEmit -p .
echo "[lint] prettier --check" >&2
prettier --check --log-level warn . || { echo "[lint] run 'npm run format' to fix the formatting" >&2; exit 1; }
echo "[lint] eslint" >&2
eslint --max-warnings 0 .
