#!/usr/bin/env bash
# Baseline, importance token dropping (Hou et al. 2022), ScTD (Zhong et al. 2023, F=10), random
# selection in the token-dropping layout, random-LTD (Yao et al. 2022) on its kept-length schedule and
# importance dropping on the same schedule, at EQUAL TRAINING COMPUTE, several seeds each; then every
# run's final checkpoint fine-tuned on a downstream task, several seeds each; then compare_runs' tables
# and curves.
#
#   bash examples/study.sh                          # the embedded stdlib corpus, 6 modes x 3 seeds
#   DATA_BIN=data-bin OUT=study_big BASE_UPDATES=20000 LAYERS=12 DIM=768 FFN=3072 HEADS=12 T=512 B=32 \
#       bash examples/study.sh
#
# The baseline is this model with --token-drop 0 (exactly stock RoBERTa) under the same criterion,
# so every run logs its matmul MACs (fairseq_tokendrop/method/flops.py). The baseline trains
# BASE_UPDATES updates; every other mode gets the updates that cost the same MACs by the same count
# (expected masked count 0.15*T per sequence), so token dropping gets its extra updates; on a
# schedule (KEEP_SCHEDULE, --token-keep-schedule MIN,MAX,REQUIRE_STEPS,SEQ_PER_STEP; default: T/2 to T
# over BASE_UPDATES updates in steps of T/16) the count sums each update's own cost. Each run
# decays its learning rate over its own updates (warmup WARMUP_FRAC of them) and validates
# VALIDATIONS times. Runs are named MODE_seedK (compare_runs' grouping rule); a finished run
# (its train.log says "done training") is kept, so a killed study resumes where it stopped: delete
# the run directories when you change a setting. JOBS runs at a time with THREADS threads each.
# TARGET=A adds the compute to first reach valid mlm_acc A.
# Downstream: each run keeps its final checkpoint (RUN/checkpoint_last.pt, no optimizer state), which
# fairseq-tokendrop-finetune-glue (stock fairseq sentence_prediction) fine-tunes FINETUNE_SEEDS times on
# each task of FINETUNE_TASKS with one recipe for every mode (FINETUNE_RECIPE; its learning rate
# decays to 0 at each fine-tune's last update); default: the embedded Rotten Tomatoes task (7,749
# train, 5,003 dev snippets, docs/finetune.md). Each fine-tune writes RUN/finetune/LABEL/seedJ/
# (metrics.json, dev_predictions.txt, its logs; its checkpoints are deleted), LABEL the folder's name;
# the task is binarized once into finetune_bin/LABEL. compare_runs --downstream puts the task's score
# per mode, and paired against the baseline, next to pretraining MACs and wall-clock.
# The default (3000 baseline updates, the embedded corpus grown by the venv's package docstrings to
# 1.7M tokens, the embedded task) is the study in docs/study.md. fairseq-tokendrop-inspect reads the
# kept checkpoints too.
# Outputs in OUT: the runs, tb/, curves.png (and curves_downstream.png with fine-tuning), results.json,
# prepare_corpus.log (with sentencepiece's trainer log), rotten_tomatoes/, finetune_bin/.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TOKENDROP_VENV:-$repo/.venv}"
py="$venv/bin/python"
out="${OUT:-$repo/study_out}"
modes="${MODES:-baseline importance sctd random random-ltd importance-schedule}"
seeds="${SEEDS:-1 2 3}"
base_updates="${BASE_UPDATES:-3000}"
layers="${LAYERS:-6}" dim="${DIM:-128}" ffn="${FFN:-512}" heads="${HEADS:-2}"
tokens="${T:-64}" batch="${B:-16}" lr="${LR:-1e-3}" warmup_frac="${WARMUP_FRAC:-0.1}"
drop="${DROP:-0.5}" sctd_interval="${SCTD_INTERVAL:-10}" validations="${VALIDATIONS:-20}"
log_interval="${LOG_INTERVAL:-10}" valid_steps="${VALID_STEPS:-50}" target="${TARGET:-}"
jobs="${JOBS:-2}" threads="${THREADS:-1}"
schedule="${KEEP_SCHEDULE:-$((tokens / 2)),$tokens,$base_updates,$((tokens >= 16 ? tokens / 16 : 1))}"
# The venv's own packages whose docstrings grow the embedded corpus (--packages of make_stdlib_corpus).
# Empty: the standard library alone (the demo's corpus).
packages="${CORPUS_PACKAGES-torch sympy numpy networkx matplotlib sklearn scipy}"
# Fine-tuning: GLUE task folders as distributed (FOLDER, its name telling the task, or FOLDER=TASK); by default
# the embedded Rotten Tomatoes task (make_rotten_tomatoes, read as SST-2); FINETUNE_TASKS= for none.
read -r -a finetune_tasks <<< "${FINETUNE_TASKS-$out/rotten_tomatoes=SST-2}"
finetune_seeds="${FINETUNE_SEEDS:-1 2 3}"
finetune_recipe="${FINETUNE_RECIPE:---lr 1e-4 --batch-size 32 --epochs 3}"
mkdir -p "$out"
cd "$repo"
# Keep freed memory in the process, as CUDA's caching allocator does (docs/speed.md).
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-1073741824}"
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-1073741824}"

data="${DATA_BIN:-}"
if [ -z "$data" ]; then
    data="$out/data-bin"
    echo "== corpus: docstrings of the Python standard library${packages:+ and of $packages} -> $data" >&2
    for package in $packages; do  # before any run: the corpus reads these packages' docstrings
        [ -f "$out/corpus/train.txt" ] || "$py" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$package') is None)" \
            || { echo "study: error: CORPUS_PACKAGES names $package, which this venv lacks (matplotlib: pip install -e .[research]);" \
                      "install it, or set CORPUS_PACKAGES to other packages (another corpus than docs/study.md's)" >&2; exit 2; }
    done
    # shellcheck disable=SC2086
    [ -f "$out/corpus/train.txt" ] || "$py" scripts/make_stdlib_corpus.py --out-dir "$out/corpus" \
        ${packages:+--packages $packages}
    # sentencepiece's trainer logs some 300 lines (its spec, every EM round) to the same stderr: they go
    # to a file, and the terminal keeps prepare_corpus' own progress and notes.
    "$py" scripts/prepare_corpus.py --train "$out/corpus/train.txt" --valid "$out/corpus/valid.txt" \
        --destdir "$data" --vocab-size "${VOCAB:-4000}" --workers 2 \
        2> >(tee "$out/prepare_corpus.log" | grep --line-buffered "^prepare_corpus" >&2) \
        || { echo "study: prepare_corpus failed, see $out/prepare_corpus.log" >&2; exit 1; }
fi
[ -f "$data/dict.txt" ] || { echo "study: error: DATA_BIN=$data has no dict.txt (a fairseq-preprocess output?)" >&2; exit 1; }
if [ -z "${FINETUNE_TASKS+set}" ] && [ ! -f "$out/rotten_tomatoes/dev.tsv" ]; then
    "$py" scripts/make_rotten_tomatoes.py --out-dir "$out/rotten_tomatoes"
fi
for entry in "${finetune_tasks[@]}"; do
    [ -d "${entry%%=*}" ] || { echo "study: error: FINETUNE_TASKS: no folder ${entry%%=*}" >&2; exit 1; }
done

mode_flags() {
    case "$1" in
        baseline) echo "--token-drop 0" ;;
        importance) echo "--token-drop $drop" ;;
        sctd) echo "--token-drop $drop --sctd-interval $sctd_interval" ;;
        random) echo "--token-drop $drop --token-drop-strategy random" ;;
        random-ltd) echo "--token-keep-schedule $schedule --token-drop-strategy random-ltd" ;;
        importance-schedule) echo "--token-keep-schedule $schedule" ;;
        *) echo "study: error: MODES: unknown mode '$1' (baseline, importance, sctd, random, random-ltd," \
                "importance-schedule)" >&2; return 1 ;;
    esac
}

# Updates per mode at the baseline's compute: dict.txt plus <s> <pad> </s> <unk> <mask> is the vocabulary.
updates_for() {  # fairseq's import-time INFO lines are dropped, errors pass
    "$py" - "$1" 2> >(grep -v "^INFO:" >&2) <<EOF
import sys
from functools import lru_cache
from fairseq_tokendrop.method import flops
from fairseq_tokendrop.method.keep_schedule import parse_keep_schedule
from fairseq_tokendrop.method.random_ltd import default_layers
from fairseq_tokendrop.method.token_selection import num_kept
mode, T = sys.argv[1], $tokens
layerwise = len(default_layers($layers)) if mode == "random-ltd" else None


@lru_cache(maxsize=None)
def ratio(kept):
    r = flops.ideal_ratio($layers, $dim, $ffn, T, kept, masked=round(0.15 * T),
                          vocab=$(wc -l < "$data/dict.txt") + 5, layerwise=layerwise)
    return flops.sctd_ideal_ratio(r, $sctd_interval) if mode == "sctd" else r


if mode in ("random-ltd", "importance-schedule"):
    try:
        schedule = parse_keep_schedule("$schedule", T)
    except ValueError as e:
        sys.exit(f"study: error: KEEP_SCHEDULE $schedule: {e}")
    print(flops.equal_compute_updates($base_updates, lambda step: ratio(min(schedule.kept(step), T))))
else:
    print(flops.equal_compute_updates($base_updates, ratio(T if mode == "baseline" else num_kept(T, $drop, 0))))
EOF
}

train() {  # mode seed
    local mode=$1 seed=$2 name="$1_seed$2" updates flags
    local dir="$out/$name"
    if grep -qs "done training" "$dir/train.log" && [ -f "$dir/checkpoint_last.pt" ]; then
        echo "== $name: done already, kept" >&2; return 0
    fi
    flags=$(mode_flags "$mode")
    updates=$(updates_for "$mode")
    local warmup
    warmup=$("$py" -c "print(round($updates * $warmup_frac))")
    local valid_every=$(( (updates / validations + log_interval - 1) / log_interval * log_interval ))
    echo "== $name: $updates updates ($flags), validating every $valid_every" >&2
    rm -rf "$dir" "$out/tb/$name"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=$threads "$venv/bin/fairseq-train" "$data" --user-dir fairseq_tokendrop \
        --task masked_lm_tokendrop --criterion masked_lm_tokendrop --arch tokendrop_roberta_base \
        --encoder-layers "$layers" --encoder-embed-dim "$dim" --encoder-ffn-embed-dim "$ffn" \
        --encoder-attention-heads "$heads" $flags \
        --sample-break-mode none --tokens-per-sample "$tokens" --max-positions "$tokens" --batch-size "$batch" \
        --optimizer adam --adam-betas "(0.9, 0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
        --lr "$lr" --lr-scheduler polynomial_decay --warmup-updates "$warmup" --total-num-update "$updates" \
        --max-update "$updates" --validate-interval-updates "$valid_every" \
        --no-epoch-checkpoints --no-save-optimizer-state \
        --max-valid-steps "$valid_steps" --seed "$seed" \
        --num-workers 0 --log-format json --log-interval "$log_interval" --no-progress-bar \
        --tensorboard-logdir "$out/tb/$name" --save-dir "$dir" > "$dir/train.log" 2>&1 \
        || { echo "study: $name failed, see $dir/train.log" >&2; return 1; }
    rm -f "$dir/checkpoint_best.pt"  # the final checkpoint (checkpoint_last.pt) is the one fine-tuned
    echo "== $name: done, $(grep '| valid |' "$dir/train.log" | tail -1 | grep -oE '"valid_mlm_acc": "[^"]*"')" >&2
}

runs=()
for seed in $seeds; do
    for mode in $modes; do
        mode_flags "$mode" > /dev/null
        runs+=("$out/${mode}_seed$seed")
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || exit 1; done
        train "$mode" "$seed" &
    done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || exit 1; done

finetune() {  # label folder task run seed: one fine-tune of the run's final checkpoint
    local label=$1 folder=$2 task=$3 name=$4 seed=$5
    local ft="$out/$name/finetune/$label/seed$seed" started=$SECONDS
    [ -f "$ft/metrics.json" ] && return 0
    mkdir -p "$ft"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=$threads "$py" scripts/finetune_glue.py "$folder" ${task:+--task "$task"} \
        --checkpoint "$out/$name/checkpoint_last.pt" --out "$ft" --bin-dir "$out/finetune_bin/$label" \
        $finetune_recipe --seed "$seed" -- --num-workers 0 > /dev/null 2> "$ft/finetune.log" \
        || { echo "study: fine-tuning $name on $label (seed $seed) failed, see $ft/finetune.log" >&2; return 1; }
    rm -rf "$ft/checkpoints"  # metrics.json and dev_predictions.txt hold what the study reads
    echo "== $name $label seed $seed: $("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["metrics"])' \
        "$ft/metrics.json") ($((SECONDS - started)) s)" >&2
}

for entry in "${finetune_tasks[@]}"; do
    folder=${entry%%=*} task=""
    [ "$entry" = "$folder" ] || task=${entry#*=}
    echo "== fine-tuning every run's final checkpoint on $folder${task:+ as $task}, seeds $finetune_seeds:" \
         "$finetune_recipe" >&2
    tunes=()  # "run seed": every run's first seed, then every run's second, ...
    for ft_seed in $finetune_seeds; do
        for run in "${runs[@]}"; do tunes+=("${run##*/} $ft_seed"); done
    done
    # The first binarizes the task into finetune_bin/ alone; the others reuse it.
    # shellcheck disable=SC2086
    finetune "${folder##*/}" "$folder" "$task" ${tunes[0]}
    for tune in "${tunes[@]:1}"; do
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || exit 1; done
        # shellcheck disable=SC2086
        finetune "${folder##*/}" "$folder" "$task" $tune &
    done
    while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || exit 1; done
done

echo "== compare_runs" >&2
"$py" scripts/compare_runs.py --runs "${runs[@]}" ${target:+--target "$target"} \
    --plot "$out/curves.png" --json "$out/results.json" ${finetune_tasks[0]:+--downstream}
