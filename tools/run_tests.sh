#!/usr/bin/env bash
# Lint, then run the whole mmboat test suite (slow end-to-end tests
# included), in the environment made by tools/setup_env.sh.
#
#   bash tools/run_tests.sh                 # lint, then every test
#   bash tools/run_tests.sh -m "not slow"   # lint, then the fast tests
#   bash tools/run_tests.sh --lint-only     # lint only
#   bash tools/run_tests.sh --no-lint ...   # tests only
#   MMBOAT_TEST_WORKERS=1 bash tools/run_tests.sh   # in one process
#
# Other arguments go to pytest. The lint is OpenMMLab's: flake8, isort and
# yapf with the settings in setup.cfg (versions in requirements/tests.txt);
# it fails, before any test runs, with the commands that fix it.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMBOAT_VENV:-$REPO/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[mmboat tests] no environment at $VENV: run 'bash tools/setup_env.sh' first" >&2
  exit 1
fi
cd "$REPO"

LINT=1
TESTS=1
PYTEST_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --lint-only) TESTS=0 ;;
    --no-lint) LINT=0 ;;
    *) PYTEST_ARGS+=("$arg") ;;
  esac
done

# What the lint checks.
LINT_PATHS=(mmboat tools tests configs setup.py)

lint() {
  local bin="$VENV/bin" tool failed=()
  for tool in flake8 isort yapf; do
    if [ ! -x "$bin/$tool" ]; then
      echo "[mmboat lint] $tool is not installed in $VENV: run 'bash tools/setup_env.sh' (it installs requirements/tests.txt)" >&2
      return 1
    fi
  done
  echo "[mmboat lint] flake8, isort, yapf over ${LINT_PATHS[*]}"
  "$bin/flake8" "${LINT_PATHS[@]}" || failed+=(flake8)
  "$bin/isort" --check-only --diff --quiet "${LINT_PATHS[@]}" \
    || failed+=(isort)
  # yapf --diff exits 1 when it would change a file, and prints the diff
  "$bin/yapf" --diff -r -p "${LINT_PATHS[@]}" || failed+=(yapf)

  if [ "${#failed[@]}" -eq 0 ]; then
    echo "[mmboat lint] passed"
    return 0
  fi
  local paths="${LINT_PATHS[*]}" venv="$VENV"
  [ "$venv" != "$REPO/.venv" ] || venv=.venv
  {
    echo
    echo "[mmboat lint] FAILED: ${failed[*]} (output above). To fix, from the repository root:"
    echo "[mmboat lint]   $venv/bin/isort $paths"
    echo "[mmboat lint]   $venv/bin/yapf -i -r -p $paths"
    echo "[mmboat lint] then fix by hand what flake8 still reports (e.g. lines over 79 columns, unused imports):"
    echo "[mmboat lint]   $venv/bin/flake8 $paths"
    echo "[mmboat lint] and check again with: bash tools/run_tests.sh --lint-only"
  } >&2
  return 1
}

if [ "$LINT" = 1 ]; then
  lint
fi
if [ "$TESTS" = 1 ]; then
  # MMBOAT_TEST_WORKERS pytest processes (pytest-xdist; default 2, 1: none),
  # each with one thread: on 2 cores two single-threaded workers finish the
  # suite in about half the time of one process with two threads, whose
  # many small operations use one core
  WORKERS="${MMBOAT_TEST_WORKERS:-2}"
  if [ "$WORKERS" != 1 ]; then
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
    PYTEST_ARGS=(-n "$WORKERS" --dist worksteal ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"})
  fi
  exec "$VENV/bin/python" -m pytest ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"}
fi
