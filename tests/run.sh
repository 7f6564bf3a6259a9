#!/usr/bin/env bash
# The test suite, on CPU: sets up ./.venv if needed, then runs pytest.
#   bash tests/run.sh            everything (what .ci/run calls): unit tests and every test that
#                                starts processes (fairseq-train, 2-rank gloo groups, the commands, a wheel)
#   bash tests/run.sh --fast     the unit tests only (pytest -m "not slow"), for while you work
# Other arguments go to pytest; when the first one names test files
# (bash tests/run.sh tests/test_x.py -k y), only those run.
# TEST_WORKERS (default 2) pytest-xdist workers share the test files (--dist loadfile: a file's tests, and the
# fixtures only they use, stay in one worker); most tests use one core, so on 2 cores two workers took the
# suite from 33 to 20 minutes. TEST_WORKERS=1: one process, as plain pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup_env.sh"
cd "$repo"
fast=()
if [ "${1:-}" = "--fast" ]; then
    fast=(-m "not slow")
    shift
fi
if [ $# -eq 0 ] || [[ "$1" == -* ]]; then
    set -- tests "$@"
fi
workers="${TEST_WORKERS:-2}"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || { echo "tests/run.sh: error: TEST_WORKERS=$workers: a number of workers, 1 or more" >&2; exit 2; }
parallel=()
[ "$workers" -eq 1 ] || parallel=(-n "$workers" --dist loadfile)
exec "${TOKENDROP_VENV:-$repo/.venv}/bin/python" -m pytest "${fast[@]}" "${parallel[@]}" "$@"
