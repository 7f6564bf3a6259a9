#!/usr/bin/env bash
# MLPerf BERT data -> token-dropping pretraining that stops at masked-LM accuracy TARGET (0.720)
# on eval_10k, evaluated every floor(0.05*(230.23*B+3e6)/25000)*25000 samples as MLPerf does.
#
#   MLPERF_DIR=/data/mlperf_bert INIT_TF=/data/mlperf_bert/tf1_ckpt/model.ckpt-28252 OUT=runs/mlperf \
#       NGPU=8 PER_GPU=32 bash examples/mlperf_bert_to_target.sh
#
# MLPERF_DIR holds what MLPerf's data preparation produced:
#   vocab.txt                 the WordPiece vocabulary (VOCAB=... to override)
#   training shards           (TRAIN_GLOB=...) the first of these names that exists: part-* (MLPerf TF
#                             reference), *.tfrecord-* (TF Model Garden), part_*_of_*.hdf5 (MLPerf PyTorch
#                             reference part_N_of_2048, NVIDIA part_00000_of_04320), part_*_of_*.hdf
#                             (NVIDIA variable length), part_[0-9]* (NVIDIA packed), train_shard_*.hdf5
#                             (academic-budget-bert), *_training_*.hdf5 (NVIDIA DeepLearningExamples)
#   the eval set              (EVAL_FILE=..., a file or a glob) the first of: eval_10k (TF),
#                             part_eval_10k.hdf5 (HDF5 producers), test_shard_*.hdf5, *_test_*.hdf5
#   checksums.md (optional)   the (file, size, md5) table; every file is verified first (CHECKSUMS=...)
# The converter tells each file's layout from its content, whatever its name.
# MLPerf starts from a checkpoint, and so must this script: without INIT_TF or INIT_HF it stops before
#   anything runs (MLPerf's 600 updates at its warm-start learning rate cannot reach 0.720 from random
#   weights). FROM_SCRATCH=1 trains from random weights instead, and then needs MAX_UPDATES (with LR,
#   WARMUP) for a schedule of its own. INIT_TF=PREFIX: its TensorFlow checkpoint as MLPerf ships it (TF1
#   tf1_ckpt/model.ckpt-28252 with bert_config.json beside it, or a TF2 Model Garden checkpoint), read
#   without TensorFlow (docs/tensorflow.md); or INIT_HF=DIR: a Hugging Face BERT/RoBERTa directory.
#   Its vocabulary must be the vocab.txt above. Either keeps the segment (token-type) embeddings
#   (--num-segment), and the model takes the imported sizes, activation and LayerNorm epsilon
#   (OUT/init/flags.txt). Before any update the script evaluates the imported model on the eval set:
#   MLPerf's step-0 check ("very close to 0.34085" for its checkpoint on eval_10k).
# Steps already done (verified files, converted splits, imported weights) are skipped on a re-run.
# Optimizer and schedule: those of MLPerf's TPU reference run at batch 8192: LAMB with betas 0.88/0.88,
#   eps 1e-6, weight decay 0.0166629 (not on biases and LayerNorms), gradients clipped to norm 1, lr
#   LR=0.00288293 warmed up over WARMUP=287 updates from update WARMUP_START=-76, decayed linearly to 0
#   at update MAX_UPDATES=600.
#   LAMB is NVIDIA apex's FusedLAMB where apex is installed, else the plugin's PyTorch LAMB (docs/lamb.md).
# BATCH=8192 sequences per update: --update-freq is BATCH / (NGPU * PER_GPU), rounded up.
# Also: TARGET=0.720, ARCH=tokendrop_roberta_large, TOKENS=512 (MLPerf's length), KEEP=256 (tokens the middle
#   layers see; 512 = the reference's compute), EVAL_SAMPLES=mlperf (or a number, for trial runs), WORKERS
#   (conversion processes), SAVE_DIR=OUT/checkpoints, PYTHON, EXTRA_ARGS (appended to fairseq-train, so they win).
# Differences from MLPerf: docs/data.md#mlperf-bert (token dropping itself; RoBERTa's post-LN layers are
#   BERT's, but fairseq adds positions from index 2 and has no next-sentence head, which MLPerf does not train).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MLPERF_DIR=${MLPERF_DIR:?set MLPERF_DIR to the MLPerf BERT data directory}
OUT=${OUT:?set OUT to an output directory}
refuse() { echo "mlperf_bert_to_target.sh: error: $*" >&2; exit 2; }
if [ -n "${INIT_TF:-}" ] && [ -n "${INIT_HF:-}" ]; then
    refuse "set one of INIT_TF and INIT_HF, not both"
fi
if [ -z "${INIT_TF:-}${INIT_HF:-}" ] && [ "${FROM_SCRATCH:-0}" != 1 ]; then
    refuse "set INIT_TF=.../tf1_ckpt/model.ckpt-28252 (MLPerf's checkpoint) or INIT_HF=DIR: MLPerf's 600 updates" \
           "continue a trained BERT and cannot reach mlm_acc ${TARGET:-0.720} from random weights" \
           "(FROM_SCRATCH=1 with MAX_UPDATES trains from scratch on a schedule of your own)"
fi
if [ "${FROM_SCRATCH:-0}" = 1 ] && [ -n "${INIT_TF:-}${INIT_HF:-}" ]; then
    refuse "FROM_SCRATCH=1 trains from random weights: unset INIT_TF/INIT_HF, or FROM_SCRATCH"
fi
if [ "${FROM_SCRATCH:-0}" = 1 ] && [ -z "${MAX_UPDATES:-}" ]; then
    refuse "FROM_SCRATCH=1 needs MAX_UPDATES (and LR, WARMUP): MLPerf's 600-update schedule continues its checkpoint"
fi
VOCAB=${VOCAB:-$MLPERF_DIR/vocab.txt}
first_match() {  # the first of these patterns under MLPERF_DIR that names a file (else the first one)
    local pattern
    for pattern in "$@"; do
        if compgen -G "$MLPERF_DIR/$pattern" >/dev/null; then echo "$MLPERF_DIR/$pattern"; return; fi
    done
    echo "$MLPERF_DIR/$1"
}
TRAIN_GLOB=${TRAIN_GLOB:-$(first_match 'part-*' '*.tfrecord-*' 'part_*_of_*.hdf5' 'part_*_of_*.hdf' 'part_[0-9]*' \
    'train_shard_*.hdf5' '*_training_*.hdf5')}
EVAL_FILE=${EVAL_FILE:-$(first_match eval_10k part_eval_10k.hdf5 'test_shard_*.hdf5' '*_test_*.hdf5')}
CHECKSUMS=${CHECKSUMS:-$MLPERF_DIR/checksums.md}
TARGET=${TARGET:-0.720}
EVAL_SAMPLES=${EVAL_SAMPLES:-mlperf}  # or a number of samples, for small trial runs
NGPU=${NGPU:-1}
PER_GPU=${PER_GPU:-32}
BATCH=${BATCH:-8192}  # sequences per update, MLPerf's TPU run
UPDATE_FREQ=$(( (BATCH + NGPU * PER_GPU - 1) / (NGPU * PER_GPU) ))
if [ $((UPDATE_FREQ * NGPU * PER_GPU)) -ne "$BATCH" ]; then
    echo "mlperf_bert_to_target.sh: note: NGPU*PER_GPU does not divide BATCH=$BATCH;" \
         "each update takes $((UPDATE_FREQ * NGPU * PER_GPU)) sequences" >&2
fi
ARCH=${ARCH:-tokendrop_roberta_large}
TOKENS=${TOKENS:-512}  # MLPerf's sequence length
KEEP=${KEEP:-256}      # tokens the middle layers see
LR=${LR:-0.00288293}
WARMUP=${WARMUP:-287}
WARMUP_START=${WARMUP_START:--76}  # MLPerf's warm-up starts before update 0 (docs/lamb.md)
MAX_UPDATES=${MAX_UPDATES:-600}
WORKERS=${WORKERS:-$(nproc)}
PYTHON=${PYTHON:-python}
DATA=$OUT/data-bin
SAVE_DIR=${SAVE_DIR:-$OUT/checkpoints}
mkdir -p "$OUT" "$SAVE_DIR"

has_split() {  # the converter publishes premasked.json last, so a listed split is complete
    [ -f "$DATA/premasked.json" ] && "$PYTHON" -c 'import json, sys; sys.exit(sys.argv[2] not in json.load(open(sys.argv[1]))["splits"])' "$DATA/premasked.json" "$1"
}

if [ -f "$CHECKSUMS" ] && [ ! -f "$OUT/.checksums-ok" ]; then
    echo "== verifying $CHECKSUMS" >&2
    "$PYTHON" "$repo/scripts/verify_checksums.py" "$CHECKSUMS" "$MLPERF_DIR"
    touch "$OUT/.checksums-ok"
fi

# shellcheck disable=SC2086
has_split train || "$PYTHON" "$repo/scripts/convert_premasked.py" --vocab "$VOCAB" --destdir "$DATA" \
    --split train --workers "$WORKERS" $TRAIN_GLOB
# shellcheck disable=SC2086
has_split valid || "$PYTHON" "$repo/scripts/convert_premasked.py" --vocab "$VOCAB" --destdir "$DATA" \
    --split valid --workers 1 $EVAL_FILE

init=()
if [ -n "${INIT_TF:-}" ] || [ -n "${INIT_HF:-}" ]; then
    if [ ! -f "$OUT/init/flags.txt" ]; then
        if [ -n "${INIT_TF:-}" ]; then
            "$PYTHON" "$repo/scripts/import_tf.py" "$INIT_TF" "$OUT/init" --vocab "$VOCAB" --keep-segments
        else
            "$PYTHON" "$repo/scripts/import_hf.py" "$INIT_HF" "$OUT/init" --keep-segments
        fi
    fi
    if ! cmp -s "$OUT/init/dict.txt" "$DATA/dict.txt"; then
        echo "mlperf_bert_to_target.sh: error: ${INIT_TF:-$INIT_HF} has another vocabulary than $VOCAB" \
             "($OUT/init/dict.txt differs from $DATA/dict.txt)" >&2
        exit 2
    fi
    if [ ! -f "$SAVE_DIR/checkpoint_last.pt" ]; then
        echo "== step 0: masked-LM accuracy of the initial checkpoint on the eval set, before any update" \
             "(MLPerf's reference checkpoint on eval_10k: very close to 0.34085)" >&2
        "$PYTHON" "$repo/scripts/eval_mlm_accuracy.py" "$OUT/init/model.pt" "$DATA" --split valid \
            | tee "$OUT/step0_accuracy.txt"
    fi
    # the imported sizes, activation, LayerNorm epsilon and segments; unlike --restore-file,
    # --finetune-from-model is ignored once checkpoint_last.pt exists, so a re-run resumes
    read -r -a init < "$OUT/init/flags.txt"
    init+=(--finetune-from-model "$OUT/init/model.pt")
fi

# shellcheck disable=SC2086
fairseq-train "$DATA" --user-dir "$repo/fairseq_tokendrop" \
    --task masked_lm_tokendrop --criterion masked_lm_tokendrop --arch "$ARCH" \
    --tokens-per-sample "$TOKENS" --token-keep-k "$KEEP" --token-importance-beta 0.995 \
    --batch-size "$PER_GPU" --distributed-world-size "$NGPU" --update-freq "$UPDATE_FREQ" \
    --optimizer lamb --lamb-betas "(0.88, 0.88)" --lamb-eps 1e-6 --weight-decay 0.0166629 \
    --lamb-no-decay-bias-and-norm --lamb-max-grad-norm 1.0 \
    --lr "$LR" --lr-scheduler mlperf_polynomial --warmup-updates "$WARMUP" --warmup-start-update "$WARMUP_START" \
    --total-num-update "$MAX_UPDATES" --max-update "$MAX_UPDATES" \
    --eval-interval-samples "$EVAL_SAMPLES" --stop-at-mlm-acc "$TARGET" --no-epoch-checkpoints \
    "${init[@]}" --save-dir "$SAVE_DIR" --log-format json --log-interval 100 ${EXTRA_ARGS:-} \
    2>&1 | tee "$SAVE_DIR/train.log"

if [ ! -f "$SAVE_DIR/stop_at_mlm_acc.json" ]; then
    echo "mlperf_bert_to_target.sh: training ended without reaching mlm_acc $TARGET" >&2
    exit 1
fi
cat "$SAVE_DIR/stop_at_mlm_acc.json"
checkpoint=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["checkpoint"])' "$SAVE_DIR/stop_at_mlm_acc.json")
echo "== masked-LM accuracy of $checkpoint on eval_10k, full model" >&2
"$PYTHON" "$repo/scripts/eval_mlm_accuracy.py" "$checkpoint" "$DATA" --split valid
