#!/usr/bin/env bash
# The main job on an embedded default: pretrain a small RoBERTa twice on the Python standard
# library's docstrings (real English every Python install carries), once as the baseline and
# once with token dropping, then compare masked-LM accuracy and speed. ~10 min on 2 CPU cores.
#
#   bash examples/demo.sh                 # everything, set-up included
#   UPDATES=400 DROP=0.5 bash examples/demo.sh
# Outputs in demo_out/ (OUT=...): the corpus, the data-bin, both runs' logs and checkpoints,
# tensorboard logs (tensorboard --logdir demo_out/tb) and results.json.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup_env.sh"
venv="${TOKENDROP_VENV:-$repo/.venv}"
py="$venv/bin/python"
out="${OUT:-$repo/demo_out}"
updates="${UPDATES:-200}"
drop="${DROP:-0.5}"
mkdir -p "$out"
cd "$repo"
# Keep freed memory in the process, as CUDA's caching allocator does: with glibc's defaults
# every step hands its activations back to the OS and faults them in again, which costs
# token dropping (tensors of two lengths) more than the baseline. See README, Speed.
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-1073741824}"
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-1073741824}"

echo "== 1/5 corpus: docstrings of the Python standard library" >&2
[ -f "$out/corpus/train.txt" ] || "$py" scripts/make_stdlib_corpus.py --out-dir "$out/corpus"
echo "== 2/5 sentencepiece + fairseq-preprocess" >&2
"$py" scripts/prepare_corpus.py --train "$out/corpus/train.txt" --valid "$out/corpus/valid.txt" \
    --destdir "$out/data-bin" --vocab-size 4000 --workers 2

train() {  # name, extra flags...
    local name=$1; shift
    echo "== 3/5 $name: $updates updates" >&2
    rm -rf "$out/$name" "$out/tb/$name"
    mkdir -p "$out/$name"
    "$venv/bin/fairseq-train" "$out/data-bin" --user-dir fairseq_tokendrop \
        --task masked_lm_tokendrop --criterion masked_lm_tokendrop --arch tokendrop_roberta_base \
        --encoder-layers 6 --encoder-embed-dim 192 --encoder-ffn-embed-dim 768 --encoder-attention-heads 3 \
        --sample-break-mode none --tokens-per-sample 128 --max-positions 128 --batch-size 16 \
        --optimizer adam --adam-betas "(0.9, 0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
        --lr 1e-3 --lr-scheduler polynomial_decay --warmup-updates 24 --total-num-update "$updates" \
        --max-update "$updates" --validate-interval-updates 40 --save-interval-updates 1000000 \
        --no-epoch-checkpoints --max-valid-steps 20 --seed 1 --num-workers 0 \
        --log-format json --log-interval 10 --no-progress-bar \
        --tensorboard-logdir "$out/tb/$name" --save-dir "$out/$name" "$@" 2>&1 \
        | tee "$out/$name/train.log" | grep --line-buffered -E '"num_updates": "[0-9]*0"|valid on' >&2 || true
    grep -q "done training" "$out/$name/train.log" || { echo "demo: $name failed, see $out/$name/train.log" >&2; exit 1; }
}
train baseline --token-drop 0
train tokendrop --token-drop "$drop"

echo "== 4/5 speed: the same model, baseline and token dropping interleaved step by step" >&2
"$py" scripts/benchmark.py --layers 6 --dim 192 --ffn 768 --heads 3 --seq-len 128 --batch-size 16 \
    --vocab $(( $(wc -l < "$out/data-bin/dict.txt") + 5 )) --token-drop "$drop" --modes baseline,importance \
    --warmup 2 --steps 12 --json "$out/speed.json" 2> "$out/speed.log" \
    || { echo "demo: the benchmark failed, see $out/speed.log" >&2; exit 1; }

echo "== 5/5 masked-LM accuracy of the two fairseq-train runs" >&2
"$py" scripts/demo_report.py --runs "$out/baseline" "$out/tokendrop" --json "$out/results.json"
