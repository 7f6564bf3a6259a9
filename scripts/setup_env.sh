#!/usr/bin/env bash
# Create ./.venv with everything the plugin, its tests and its demo need.
# Idempotent: a no-op when the venv already matches setup.py and this script.
#   PYTHON=python3.11   the interpreter to build the venv from
#   TORCH_SPEC=...      the torch requirement (default: the CPU build 2.13.0; on a GPU
#                       machine give the build that matches its CUDA, e.g. TORCH_SPEC=torch)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TOKENDROP_VENV:-$repo/.venv}"
stamp="$venv/.tokendrop-installed"
want="$(cat "$repo/setup.py" "$repo/scripts/setup_env.sh" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "setting up $venv (once) ..." >&2
"${PYTHON:-python3}" -m venv "$venv"
# Installed first and on its own: a bare "torch" requirement resolves to a
# multi-GB CUDA build, which a CPU machine does not need.
"$venv/bin/pip" install -q "${TORCH_SPEC:-torch==2.13.0}"
"$venv/bin/pip" install -q -e "$repo[test]"
# ve-fairseq requires torchaudio, and pip resolves one built for another torch (2.11 for torch
# 2.13): its extension cannot load, and transformers imports torchaudio whenever it is
# installed, so even RobertaForMaskedLM fails to import. Nothing in fairseq's text tasks or
# here uses audio, so the venv goes without it.
"$venv/bin/pip" uninstall -q -y torchaudio
echo "$want" > "$stamp"
