#!/usr/bin/env bash
# The test suite, on CPU: sets up ./.venv if needed, then runs pytest. Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup_env.sh"
cd "$repo"
exec "${TOKENDROP_VENV:-$repo/.venv}/bin/python" -m pytest tests "$@"
