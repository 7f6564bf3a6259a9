#!/usr/bin/env bash
# ScTD pretraining (Zhong et al., ACL 2023): the command of the ScTD repository's README,
# run on stock fairseq with this plugin. Changed: --user-dir, --arch tokendrop_roberta_large,
# --task masked_lm_tokendrop. Added, to get what the fork hard-codes: --criterion
# masked_lm_tokendrop --sctd-interval 10 --token-importance-beta 0.95 (drop SCTD to train
# vanilla token dropping). The fork's allow list keeps <pad>; ours drops it first. Dropped:
# --ddp-backend=legacy_ddp, so fairseq's default (torch DDP) overlaps the gradient all-reduce with
# the backward; --checkpoint-activations (in EXTRA_ARGS) trades a recomputed forward for the
# activations a ScTD update holds for both passes (docs/multi_gpu.md).
#
#   DATA_DIR=data-bin SAVE_DIR=ckpt bash examples/sctd_roberta_large.sh
# FP16 (default: the seed's fp16 flags; GPU only) and EXTRA_ARGS (appended, so they override)
# are for trying the recipe elsewhere, e.g. the test suite runs it tiny on CPU.
set -euo pipefail
DATA_DIR=${DATA_DIR:?set DATA_DIR to a fairseq data-bin}
SAVE_DIR=${SAVE_DIR:?set SAVE_DIR}
USER_DIR=${USER_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/fairseq_tokendrop}
FP16=${FP16---memory-efficient-fp16 --fp16-init-scale 8}
SCTD=${SCTD---criterion masked_lm_tokendrop --sctd-interval 10 --token-importance-beta 0.95}

mkdir -p "$SAVE_DIR"

# shellcheck disable=SC2086  # FP16, SCTD and EXTRA_ARGS are flag lists
fairseq-train "$DATA_DIR" \
    --user-dir "$USER_DIR" \
    --train-subset train \
    --valid-subset valid \
    --skip-invalid-size-inputs-valid-test \
    $FP16 \
    --arch tokendrop_roberta_large \
    --task masked_lm_tokendrop \
    --sample-break-mode "complete" \
    --batch-size 8 \
    --tokens-per-sample 512 \
    --save-interval 1 --save-interval-updates 10000 --keep-interval-updates 25 \
    --no-epoch-checkpoints \
    --optimizer adam --adam-betas "(0.9, 0.999)" \
    --adam-eps 1e-06 \
    --weight-decay 0.01 \
    --clip-norm 0.0 \
    --lr 2e-4 \
    --lr-scheduler polynomial_decay \
    --warmup-updates 25000 \
    --dropout 0.1 \
    --token-drop 0.5 \
    --max-positions 512 \
    --attention-dropout 0.1 \
    --update-freq 2 \
    --total-num-update 250000 \
    --max-update 250000 \
    --max-epoch 40 \
    $SCTD \
    --save-dir "$SAVE_DIR" \
    --log-format json --log-interval 100 ${EXTRA_ARGS:-} 2>&1 | tee "$SAVE_DIR/train.log"
