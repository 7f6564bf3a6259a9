#!/usr/bin/env bash
# The prepared device check (fairseq_tokendrop/research/gpu_check.py): GPU speed of token dropping against stock
# RoBERTa, the SDPA backend of each kind of layer, ScTD's cost, and a fairseq-train --fp16 run. Under 8 minutes
# on one H100/H200; without CUDA it runs at tiny sizes on CPU.
#
#   bash scripts/gpu_check.sh [OUT_DIR] [--tiny]          # default OUT_DIR: ./gpu_check_out
#   bash scripts/gpu_check.sh --fetch-wheels               # here, with PyPI: wheels for a bare GPU machine
#
# Python: the first of $PYTHON, ./.venv/bin/python, python3 that imports torch and fairseq. A GPU machine whose
# python3 has torch but no fairseq and no registry (a bare image): run --fetch-wheels where PyPI is reachable,
# carry ./.whl along, and the wheels are installed into a temporary --target here. With PyPI and no .whl,
# scripts/setup_env.sh builds ./.venv (TORCH_SPEC=torch when nvidia-smi is present).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if [ "${1:-}" = "--fetch-wheels" ]; then
    # What a CUDA image with torch lacks for the plugin: fairseq (ve-fairseq, cp312) and its own needs.
    # antlr4-python3-runtime 4.9.3 (hydra's parser) is published as an sdist only: built here, pure Python.
    mkdir -p .whl
    grep -qx '/.whl/' .gitignore 2>/dev/null || grep -qx '/.whl/' .git/info/exclude 2>/dev/null ||
        { mkdir -p .git/info && echo '/.whl/' >> .git/info/exclude; }
    platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.12}" \
        --implementation cp "${platforms[@]}" -d .whl \
        ve-fairseq==0.12.3 hydra-core==1.3.2 omegaconf==2.3.0 bitarray cffi pycparser
    "${PYTHON:-python3}" -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
    ls .whl
    exit 0
fi

out="${1:-$repo/gpu_check_out}"
[ $# -gt 0 ] && shift

imports_both() { "$1" -c 'import torch, fairseq' >/dev/null 2>&1; }
py=""
for candidate in "${PYTHON:-}" "$repo/.venv/bin/python" python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && imports_both "$candidate"; then
        py="$candidate"
        break
    fi
done
if [ -z "$py" ] && [ -d "$repo/.whl" ] && python3 -c 'import torch' >/dev/null 2>&1; then
    site="$(mktemp -d)/site"
    echo "[gpu_check] installing $(ls "$repo"/.whl/*.whl | wc -l) carried wheels into $site" >&2
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$repo"/.whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    imports_both python3 && py=python3
fi
if [ -z "$py" ]; then
    command -v nvidia-smi >/dev/null 2>&1 && export TORCH_SPEC="${TORCH_SPEC:-torch}"
    bash "$repo/scripts/setup_env.sh"
    py="$repo/.venv/bin/python"
fi
versions="$("$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())')"
echo "[gpu_check] python: $py ($versions)" >&2
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m fairseq_tokendrop.research.gpu_check --out "$out" "$@"
