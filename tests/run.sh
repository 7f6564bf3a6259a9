#!/usr/bin/env bash
# The test suite, on CPU: sets up ./.venv if needed, then runs pytest.
#   bash tests/run.sh            everything (what .ci/run calls): unit tests and every test that
#                                starts processes (fairseq-train, 2-rank gloo groups, the commands, a wheel)
#   bash tests/run.sh --fast     the unit tests only (pytest -m "not slow"), for while you work
# Other arguments go to pytest; when the first one names test files
# (bash tests/run.sh tests/test_x.py -k y), only those run.
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
exec "${TOKENDROP_VENV:-$repo/.venv}/bin/python" -m pytest "${fast[@]}" "$@"
