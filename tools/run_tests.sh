#!/usr/bin/env bash
# Run the whole mmboat test suite (slow end-to-end tests included) in the
# environment made by tools/setup_env.sh. Extra arguments go to pytest,
# e.g. `bash tools/run_tests.sh -m "not slow"` for the fast tests only.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMBOAT_VENV:-$REPO/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[mmboat tests] no environment at $VENV: run 'bash tools/setup_env.sh' first" >&2
  exit 1
fi
cd "$REPO"
exec "$VENV/bin/python" -m pytest "$@"
