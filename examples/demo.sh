#!/usr/bin/env bash
# The main job on an embedded default: pretrain a small RoBERTa on the Python standard library's
# docstrings (real English every Python install carries) twice AT EQUAL TRAINING COMPUTE, once as
# the baseline and once with token dropping (which gets the extra updates its cheaper steps buy),
# then print compare_runs' table, draw the curves and time both modes interleaved. ~10 min on 2 CPU
# cores, set-up included.
#
#   bash examples/demo.sh                       # everything, set-up included
#   BASE_UPDATES=800 DROP=0.5 bash examples/demo.sh
# Outputs in demo_out/ (OUT=...): the corpus, the data-bin, prepare_corpus.log, both runs' logs and last
# checkpoints, tensorboard logs (tensorboard --logdir demo_out/tb), curves.png, results.json, what the importance
# run drops (inspect.html, inspect.png, inspect.txt; docs/inspect.md) and speed.json.
# It is examples/study.sh with one seed of two modes; every study.sh setting applies.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup_env.sh"
venv="${TOKENDROP_VENV:-$repo/.venv}"
export OUT="${OUT:-$repo/demo_out}"
export MODES="${MODES:-baseline importance}" SEEDS="${SEEDS:-1}"
export BASE_UPDATES="${BASE_UPDATES:-300}" DROP="${DROP:-0.5}" TARGET="${TARGET:-0.08}"
# The standard library's docstrings alone (251k tokens) are enough for 300 updates; validate 10 times.
export CORPUS_PACKAGES="${CORPUS_PACKAGES-}" VALIDATIONS="${VALIDATIONS:-10}"
# Fine-tuning every run (examples/study.sh's downstream stage) would take longer than the demo itself on 2 cores:
# FINETUNE_TASKS= skips it; give it a GLUE folder (or the one make_rotten_tomatoes writes) to run it.
export FINETUNE_TASKS="${FINETUNE_TASKS-}"
export LAYERS="${LAYERS:-6}" DIM="${DIM:-128}" FFN="${FFN:-512}" HEADS="${HEADS:-2}" T="${T:-64}" B="${B:-16}"
# A fresh demo_out has no finished runs; a rerun with other settings must not keep the old ones.
rm -rf "$OUT"/*_seed*
echo "== 1/3 pretraining at equal compute: $MODES (examples/study.sh)" >&2
bash "$repo/examples/study.sh"

echo "== 2/3 what importance dropping drops (scripts/inspect_dropping.py)" >&2
checkpoint="$OUT/importance_seed1/checkpoint_last.pt"
if [ -f "$checkpoint" ]; then
    "$venv/bin/python" "$repo/scripts/inspect_dropping.py" "$checkpoint" --split valid --sentences 4 \
        --html "$OUT/inspect.html" --png "$OUT/inspect.png" --color never > "$OUT/inspect.txt" \
        || { echo "demo: inspect failed" >&2; exit 1; }
    echo "demo: kept and dropped tokens, importance against frequency: $OUT/inspect.html, $OUT/inspect.png" \
         "(the terminal view: $OUT/inspect.txt; how to read them: docs/inspect.md)" >&2
else
    echo "demo: no importance run among MODES=$MODES: nothing to inspect" >&2
fi

echo "== 3/3 speed: the same model, baseline and token dropping interleaved step by step" >&2
"$venv/bin/python" "$repo/scripts/benchmark.py" --layers "$LAYERS" --dim "$DIM" --ffn "$FFN" --heads "$HEADS" \
    --seq-len "$T" --batch-size "$B" --vocab $(( $(wc -l < "$OUT/data-bin/dict.txt") + 5 )) --token-drop "$DROP" \
    --modes baseline,importance --warmup 2 --steps 12 --json "$OUT/speed.json" 2> "$OUT/speed.log" \
    || { echo "demo: the benchmark failed, see $OUT/speed.log" >&2; exit 1; }
