#!/usr/bin/env bash
# Raw text -> sentencepiece -> fairseq data-bin -> token-dropping pretraining for MAX_UPDATES updates,
# or, with TARGET=A, until the first validation whose masked-LM accuracy reaches A (MLPerf's rule).
# The checkpoint of that update and stop_at_mlm_acc.json (update, accuracy, wall-clock seconds) land
# in SAVE_DIR. There is no default target: MLPerf's 0.720 is for its warm-started WordPiece BERT-large
# on its eval set, and no published accuracy fits a from-scratch model with your sentencepiece
# vocabulary; pick A from a baseline run (DROP=0) on your data.
#
#   TRAIN_TXT=wiki.train.txt VALID_TXT=wiki.valid.txt OUT=runs/wiki NGPU=8 \
#       bash examples/pretrain_text_to_target.sh
#
# Training: DROP=0.5 (--token-drop; 0 = stock RoBERTa, the baseline), LR=5e-4 peak learning rate
#   (Adam 0.9/0.98, polynomial decay to 0), WARMUP=10000 updates, MAX_UPDATES=1000000, global batch
#   NGPU x PER_GPU=32 x UPDATE_FREQ=1 sequences of TOKENS=512 tokens, sentencepiece VOCAB=32000.
#
# Text: one sentence per line, a blank line between documents (MLPerf's Wikipedia parts).
# PACKING=roberta: fixed TOKENS-token blocks that cross document boundaries (RoBERTa, the
#   TF Model Garden token-dropping recipe). PACKING=bert: documents kept apart, sentences kept
#   whole (BERT; fairseq's complete_doc).
# EVAL_SAMPLES=mlperf validates every floor(0.05*(230.23*B+3e6)/25000)*25000 samples for the
#   global batch B; give a number of samples for small runs.
# Model size: ARCH (tokendrop_roberta_base) plus EXTRA_ARGS for anything else fairseq-train takes.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRAIN_TXT=${TRAIN_TXT:?set TRAIN_TXT to a text file}
VALID_TXT=${VALID_TXT:?set VALID_TXT to a text file}
OUT=${OUT:?set OUT to an output directory}
TARGET=${TARGET:-}
DROP=${DROP:-0.5}
LR=${LR:-5e-4}
WARMUP=${WARMUP:-10000}
MAX_UPDATES=${MAX_UPDATES:-1000000}
UPDATE_FREQ=${UPDATE_FREQ:-1}
PACKING=${PACKING:-roberta}
TOKENS=${TOKENS:-512}
VOCAB=${VOCAB:-32000}
NGPU=${NGPU:-1}
PER_GPU=${PER_GPU:-32}
EVAL_SAMPLES=${EVAL_SAMPLES:-mlperf}
ARCH=${ARCH:-tokendrop_roberta_base}
PYTHON=${PYTHON:-python}
SAVE_DIR=${SAVE_DIR:-$OUT/checkpoints}

case "$PACKING" in
    roberta) break_mode=none; skip_long="" ;;
    # complete_doc never splits a sentence, so a sentence longer than a block is skipped
    bert) break_mode=complete_doc; skip_long=--skip-invalid-size-inputs-valid-test ;;
    *) echo "pretrain_text_to_target.sh: error: PACKING must be roberta or bert, got '$PACKING'" >&2; exit 2 ;;
esac

"$PYTHON" "$repo/scripts/prepare_corpus.py" --train "$TRAIN_TXT" --valid "$VALID_TXT" \
    --destdir "$OUT/data-bin" --vocab-size "$VOCAB" --packing "$PACKING"

mkdir -p "$SAVE_DIR"
# shellcheck disable=SC2086
fairseq-train "$OUT/data-bin" --user-dir "$repo/fairseq_tokendrop" \
    --task masked_lm_tokendrop --criterion masked_lm_tokendrop --arch "$ARCH" \
    --sample-break-mode "$break_mode" --tokens-per-sample "$TOKENS" $skip_long \
    --token-drop "$DROP" --token-importance-beta 0.995 \
    --batch-size "$PER_GPU" --distributed-world-size "$NGPU" --update-freq "$UPDATE_FREQ" \
    --optimizer adam --adam-betas "(0.9, 0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 1.0 \
    --lr "$LR" --lr-scheduler polynomial_decay --warmup-updates "$WARMUP" --total-num-update "$MAX_UPDATES" \
    --max-update "$MAX_UPDATES" \
    --eval-interval-samples "$EVAL_SAMPLES" ${TARGET:+--stop-at-mlm-acc "$TARGET"} --no-epoch-checkpoints \
    --save-dir "$SAVE_DIR" --log-format json --log-interval 100 ${EXTRA_ARGS:-} 2>&1 | tee "$SAVE_DIR/train.log"
if [ -f "$SAVE_DIR/stop_at_mlm_acc.json" ]; then
    cat "$SAVE_DIR/stop_at_mlm_acc.json"
elif [ -n "$TARGET" ]; then
    echo "pretrain_text_to_target.sh: training ended without reaching mlm_acc $TARGET" >&2
fi
