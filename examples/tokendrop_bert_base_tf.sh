#!/usr/bin/env bash
# Token-dropping BERT-base as in TF Model Garden (Hou et al., ACL 2022; the FineWeb recipe):
# keep 256 of 512 tokens, importance beta 0.995, init 10.0, allow [UNK] [CLS] [SEP] [MASK],
# deny [PAD], the tanh GELU of TF's BERT (--activation-fn gelu_accurate); RoBERTa-style packing
# (512-token blocks across documents = --sample-break-mode none); global batch 512, AdamW lr 1e-4,
# linear warm-up 10k then linear decay to 0 at 1M.
#
#   DATA_DIR=data-bin SAVE_DIR=ckpt NGPU=8 bash examples/tokendrop_bert_base_tf.sh
# PER_GPU=32 sequences per GPU (--update-freq makes up the global 512), FP16 (default --fp16; empty on CPU),
# EXTRA_ARGS (appended to fairseq-train, so they win), USER_DIR (the plugin's directory).
# Differences from TF: fairseq masks 15% of tokens without the 76-per-sequence cap, and
# the model has no segment embeddings (RoBERTa).
set -euo pipefail
DATA_DIR=${DATA_DIR:?set DATA_DIR to a fairseq data-bin}
SAVE_DIR=${SAVE_DIR:?set SAVE_DIR}
NGPU=${NGPU:-1}
PER_GPU=${PER_GPU:-32}
USER_DIR=${USER_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/fairseq_tokendrop}
UPDATE_FREQ=$(( 512 / (PER_GPU * NGPU) ))
if [ "$UPDATE_FREQ" -lt 1 ] || [ $(( UPDATE_FREQ * PER_GPU * NGPU )) -ne 512 ]; then
    echo "tokendrop_bert_base_tf.sh: error: PER_GPU*NGPU must divide the global batch 512" >&2
    exit 2
fi

mkdir -p "$SAVE_DIR"
# shellcheck disable=SC2086
fairseq-train "$DATA_DIR" \
    --user-dir "$USER_DIR" \
    --task masked_lm_tokendrop --criterion masked_lm_tokendrop \
    --arch tokendrop_roberta_base --activation-fn gelu_accurate \
    --sample-break-mode none --tokens-per-sample 512 \
    --token-keep-k 256 --token-importance-beta 0.995 --token-importance-init 10.0 \
    --token-allow-list "<unk>,<s>,</s>,<mask>" --token-deny-list "<pad>" \
    --batch-size "$PER_GPU" --update-freq "$UPDATE_FREQ" \
    --optimizer adam --adam-betas "(0.9, 0.999)" --adam-eps 1e-6 --weight-decay 0.01 \
    --lr 1e-4 --lr-scheduler polynomial_decay --warmup-updates 10000 \
    --total-num-update 1000000 --max-update 1000000 \
    --dropout 0.1 --attention-dropout 0.1 --clip-norm 0.0 \
    ${FP16---fp16} \
    --save-interval-updates 50000 --keep-interval-updates 20 --no-epoch-checkpoints \
    --validate-interval-updates 1000 \
    --save-dir "$SAVE_DIR" --log-format json --log-interval 1000 ${EXTRA_ARGS:-} 2>&1 | tee "$SAVE_DIR/train.log"
