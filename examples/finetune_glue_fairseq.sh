#!/usr/bin/env bash
# Fine-tune a (token-dropping) pretrained RoBERTa on a GLUE-style classification task with stock
# fairseq: task and criterion sentence_prediction, --arch roberta_base, --restore-file with the
# reset flags. Flags and defaults follow fairseq's examples/roberta/README.glue.md (its RTE row:
# lr 2e-5, batch 16, 2036 updates with 122 of warmup, 10 epochs, fp16).
#
#   TASK_DIR=rte CHECKPOINT=export/model.pt SAVE_DIR=ft bash examples/finetune_glue_fairseq.sh
#
# TASK_DIR     {train,dev}.input0, one text per line; {train,dev}.input1 for the second text of a
#              pair task (optional); {train,dev}.label. Cut them from the GLUE TSVs as fairseq's
#              examples/roberta/preprocess_GLUE_tasks.sh does (RTE: columns 2, 3, 4 without the header).
# CHECKPOINT   the pretrained weights: an export's model.pt (scripts/export_checkpoint.py --fairseq-out),
#              or a raw checkpoint of fairseq-train --user-dir fairseq_tokendrop. A raw one carries an
#              argparse.Namespace, which torch >= 2.6 only unpickles once the plugin allowlists it: set
#              USER_DIR_ARGS="--user-dir /path/to/fairseq_tokendrop" (the model is still stock roberta).
# DICT, SPM    pretraining's dict.txt and sentencepiece model. Default: next to CHECKPOINT, where an
#              export puts them; for a raw checkpoint give the pretraining data-bin's dict.txt and spm.model.
# ARCH_ARGS    default "--arch roberta_base --max-positions 512"; other sizes need the --encoder-* flags
#              and --max-positions of pretraining.
# NUM_CLASSES (2) LR (2e-5) MAX_SENTENCES (16) TOTAL_NUM_UPDATES (2036) WARMUP_UPDATES (122) MAX_EPOCH (10)
# BIN_DIR (TASK_DIR-bin)  FP16 (README.glue.md's fp16 flags; "" on CPU)  EXTRA_ARGS (appended, so they override)
set -euo pipefail
TASK_DIR=${TASK_DIR:?set TASK_DIR to the dir with the train/dev .input0 and .label files}
CHECKPOINT=${CHECKPOINT:?set CHECKPOINT to the pretrained model.pt}
SAVE_DIR=${SAVE_DIR:?set SAVE_DIR}
DICT=${DICT:-$(dirname "$CHECKPOINT")/dict.txt}
SPM=${SPM:-$(dirname "$CHECKPOINT")/sentencepiece.bpe.model}
BIN_DIR=${BIN_DIR:-${TASK_DIR%/}-bin}
ARCH_ARGS=${ARCH_ARGS:---arch roberta_base --max-positions 512}
USER_DIR_ARGS=${USER_DIR_ARGS:-}
NUM_CLASSES=${NUM_CLASSES:-2}
LR=${LR:-2e-05}
MAX_SENTENCES=${MAX_SENTENCES:-16}
TOTAL_NUM_UPDATES=${TOTAL_NUM_UPDATES:-2036}
WARMUP_UPDATES=${WARMUP_UPDATES:-122}
MAX_EPOCH=${MAX_EPOCH:-10}
FP16=${FP16---fp16 --fp16-init-scale 4 --threshold-loss-scale 1 --fp16-scale-window 128}
WORKERS=${WORKERS:-4}

# 1. Text -> sentencepiece pieces -> ids of the pretraining dictionary (input0/, input1/); labels get
#    their own dictionary (label/). This is the layout sentence_prediction reads. Skipped when BIN_DIR
#    already holds it for the same inputs (a stamp of their hashes), e.g. to fine-tune a baseline and a
#    token-dropping checkpoint of the same dictionary on the same binarized task.
mkdir -p "$BIN_DIR" "$SAVE_DIR"
stamp="$(cat "$DICT" "$SPM" "$TASK_DIR"/{train,dev}.* | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$BIN_DIR/.prepared" 2>/dev/null)" = "$stamp" ]; then
    echo "finetune_glue_fairseq: reusing the binarized task in $BIN_DIR" >&2
else
    rm -f "$BIN_DIR/.prepared"
    mkdir -p "$BIN_DIR/pieces"
    for input in input0 input1; do
        [ -f "$TASK_DIR/train.$input" ] || continue
        for split in train dev; do
            python -c 'import sys, sentencepiece
sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
for line in sys.stdin:
    print(" ".join(sp.encode(line.rstrip("\n"), out_type=str)))' "$SPM" \
                < "$TASK_DIR/$split.$input" > "$BIN_DIR/pieces/$split.$input"
        done
        fairseq-preprocess --only-source --srcdict "$DICT" --workers "$WORKERS" \
            --trainpref "$BIN_DIR/pieces/train.$input" --validpref "$BIN_DIR/pieces/dev.$input" \
            --destdir "$BIN_DIR/$input"
    done
    fairseq-preprocess --only-source --workers "$WORKERS" \
        --trainpref "$TASK_DIR/train.label" --validpref "$TASK_DIR/dev.label" --destdir "$BIN_DIR/label"
    echo "$stamp" > "$BIN_DIR/.prepared"
fi

# 2. Fine-tune. <s> (id 0) is the token classified; </s> (id 2) separates a pair.
# shellcheck disable=SC2086  # ARCH_ARGS, USER_DIR_ARGS, FP16 and EXTRA_ARGS are flag lists
fairseq-train "$BIN_DIR" $USER_DIR_ARGS \
    --restore-file "$CHECKPOINT" \
    --reset-optimizer --reset-dataloader --reset-meters --reset-lr-scheduler \
    $ARCH_ARGS \
    --batch-size "$MAX_SENTENCES" \
    --max-tokens 4400 \
    --task sentence_prediction \
    --required-batch-size-multiple 1 \
    --init-token 0 --separator-token 2 \
    --criterion sentence_prediction \
    --num-classes "$NUM_CLASSES" \
    --dropout 0.1 --attention-dropout 0.1 \
    --weight-decay 0.1 --optimizer adam --adam-betas "(0.9, 0.98)" --adam-eps 1e-06 \
    --clip-norm 0.0 \
    --lr-scheduler polynomial_decay --lr "$LR" --total-num-update "$TOTAL_NUM_UPDATES" \
    --warmup-updates "$WARMUP_UPDATES" \
    $FP16 \
    --max-epoch "$MAX_EPOCH" \
    --find-unused-parameters \
    --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric \
    --save-dir "$SAVE_DIR" \
    --log-format json --log-interval 100 ${EXTRA_ARGS:-} 2>&1 | tee "$SAVE_DIR/train.log"
