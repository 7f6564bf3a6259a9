#!/usr/bin/env bash
# The test suite, on CPU: sets up ./.venv if needed, then runs pytest. Extra arguments go to pytest;
# when the first one names test files (bash tests/run.sh tests/test_x.py -k y), only those run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup_env.sh"
cd "$repo"
if [ $# -eq 0 ] || [[ "$1" == -* ]]; then
    set -- tests "$@"
fi
exec "${TOKENDROP_VENV:-$repo/.venv}/bin/python" -m pytest "$@"
